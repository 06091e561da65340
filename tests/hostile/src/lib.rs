//! A hostile connector of the `connector` world, for the sandbox tests. The
//! config's `"behaviour"` says how it misbehaves:
//!
//! - `loop`: computes forever without calling the host;
//! - `memory`: allocates until something stops it;
//! - `fetch`: requests every URL of `"urls"`; succeeds only if the host
//!   refused each one (`denied`), else fails naming the URL it reached;
//! - `partial`: upserts rows 1–3, checkpoints, upserts rows 4–6, then traps;
//! - `panic`: panics at once.
//!
//! Built for `wasm32-wasip2` only; natively it is empty.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../wit", world: "connector" });

    use exports::incsync::connector::source::Guest;
    use incsync::connector::host;
    use incsync::connector::types::{
        Column, DataType, Error, HttpError, LogLevel, Method, Request, RowBatch, Table, Value,
    };

    struct Hostile;

    fn rows(ids: std::ops::RangeInclusive<u32>) -> RowBatch {
        RowBatch {
            columns: vec!["id".into(), "name".into()],
            rows: ids
                .map(|i| {
                    vec![
                        Value::String(i.to_string()),
                        Value::String(format!("row {i}")),
                    ]
                })
                .collect(),
        }
    }

    impl Guest for Hostile {
        fn schema(_config: String) -> Result<Vec<Table>, Error> {
            Ok(vec![Table {
                name: "user".into(),
                primary_key: vec!["id".into()],
                columns: vec![
                    Column {
                        name: "id".into(),
                        data_type: DataType::String,
                    },
                    Column {
                        name: "name".into(),
                        data_type: DataType::String,
                    },
                ],
            }])
        }

        fn update(config: String, _state: Option<String>) -> Result<(), Error> {
            let config: serde_json::Value =
                serde_json::from_str(&config).map_err(|e| Error::InvalidConfig(e.to_string()))?;
            match config["behaviour"].as_str().unwrap_or("") {
                "loop" => {
                    let mut x = 0u64;
                    loop {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                }
                "memory" => {
                    let mut hoard: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hoard.push(vec![1u8; 8 << 20]);
                        std::hint::black_box(&hoard);
                    }
                }
                "fetch" => {
                    for url in config["urls"].as_array().into_iter().flatten() {
                        let url = url.as_str().unwrap_or_default().to_owned();
                        let answer = host::http_fetch(&Request {
                            method: Method::Get,
                            url: url.clone(),
                            headers: vec![],
                            body: None,
                        });
                        match answer {
                            Err(HttpError::Denied(why)) => host::log(
                                LogLevel::Info,
                                &format!("refused as expected: {url}: {why}"),
                            ),
                            Ok(r) => {
                                return Err(Error::Other(format!(
                                    "reached {url}: HTTP {}",
                                    r.status
                                )));
                            }
                            Err(e) => {
                                return Err(Error::Other(format!("{url}: {e:?}, not denied")));
                            }
                        }
                    }
                    Ok(())
                }
                "partial" => {
                    host::upsert("user", &rows(1..=3))
                        .map_err(|e| Error::Destination(format!("{e:?}")))?;
                    host::checkpoint(r#"{"n":1}"#)
                        .map_err(|e| Error::Destination(format!("{e:?}")))?;
                    host::upsert("user", &rows(4..=6))
                        .map_err(|e| Error::Destination(format!("{e:?}")))?;
                    std::process::abort()
                }
                "panic" => panic!("hostile connector panics on purpose"),
                other => Err(Error::InvalidConfig(format!("unknown behaviour `{other}`"))),
            }
        }
    }

    export!(Hostile);
}
