//! A hostile connector of the `connector` world, for the sandbox tests. The
//! config's `"behaviour"` says how it misbehaves:
//!
//! - `loop`: computes forever without calling the host;
//! - `memory`: allocates until something stops it;
//! - `fetch`: requests every URL of `"urls"`; succeeds only if the host
//!   refused each one (`denied`), else fails naming the URL it reached;
//! - `partial`: upserts rows 1–3, checkpoints, upserts rows 4–6, then traps;
//! - `panic`: panics at once;
//! - `headers`: sends `"url"` once with each header of `"guest_headers"`
//!   (pairs); succeeds only if the host refused each as `invalid-request`;
//! - `methods`: sends `"url"` once with each method of `"methods"`
//!   (`PUT`, `PATCH`, `DELETE`, `POST`); logs `sent METHOD: STATUS` or
//!   `refused METHOD: why` for each, and succeeds;
//! - `checkpoint-loop`: checkpoints `{"n": 1}`, `{"n": 2}`, … forever;
//! - `echo-config`: logs `config seen: CONFIG` (the text it was given) and
//!   succeeds;
//! - `log-loop`: logs forever, never calling anything else;
//! - `busy`: upserts empty batches forever (progress, but no end);
//! - `sleep`: sleeps an hour (`std::thread::sleep`: WASI's clock waits);
//! - `refused-loop`: requests a URL outside the sandbox forever;
//! - `noisy`: logs escape sequences, a huge line and many lines, floods
//!   stderr, then fails with an error full of escape sequences;
//! - `columns`: upserts one row whose fields collide (`id`/`ID`, `_INCSYNC_x`),
//!   hold a NUL, and number `"fields"` (default 2,500), then checkpoints;
//! - `escape-state`: checkpoints a state that is not JSON and holds escape
//!   sequences, then succeeds;
//! - `big-state`: checkpoints a state of `"state_mb"` MiB (default 64);
//! - `swallow`: upserts rows 1–3 and checkpoints, logging any error it is
//!   handed (`guest saw: …`) and carrying on, then succeeds;
//! - `spans`: upserts `"cells"` rows whose one text value is the same span of
//!   a 1 MiB text, then checkpoints;
//! - `bad-batches`: upserts malformed batches (values that make no whole
//!   row, text that is not UTF-8, a span outside the text, a span cutting a
//!   character), logging each error (`guest saw: …`), then succeeds.
//!
//! Any config with `"tables": N` declares N tables `t0`, `t1`, … in
//! `schema`.
//!
//! Built for `wasm32-wasip2` only; natively it is empty.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../wit", world: "connector" });

    use exports::incsync::connector::source::Guest;
    use incsync::connector::host;
    use incsync::connector::types::{
        CellKind, Column, DataType, Error, HttpError, LogLevel, Method, Request, RowBatch, Table,
    };

    struct Hostile;

    /// A run of a batch's text.
    #[derive(Clone, Copy)]
    struct Span {
        start: u32,
        len: u32,
    }

    /// A cell as this component builds it; `batch` codes it as the WIT says.
    #[derive(Clone, Copy)]
    enum Value {
        Null,
        Integer(i64),
        String(Span),
        Json(Span),
    }

    /// A row batch of `values` (row after row), each cell coded into its
    /// kind and word.
    fn batch(columns: Vec<String>, values: &[Value], text: Vec<u8>) -> RowBatch {
        let word = |s: Span| u64::from(s.start) | u64::from(s.len) << 32;
        let (kinds, words) = values
            .iter()
            .map(|v| match *v {
                Value::Null => (CellKind::Null as u8, 0),
                Value::Integer(i) => (CellKind::Integer as u8, i as u64),
                Value::String(s) => (CellKind::String as u8, word(s)),
                Value::Json(s) => (CellKind::Json as u8, word(s)),
            })
            .unzip();
        RowBatch {
            columns,
            kinds,
            words,
            text,
        }
    }

    fn rows(ids: std::ops::RangeInclusive<u32>) -> RowBatch {
        let (mut values, mut text) = (vec![], vec![]);
        for i in ids {
            for s in [i.to_string(), format!("row {i}")] {
                values.push(Value::String(Span {
                    start: text.len() as u32,
                    len: s.len() as u32,
                }));
                text.extend_from_slice(s.as_bytes());
            }
        }
        batch(vec!["id".into(), "name".into()], &values, text)
    }

    fn span(start: u32, len: u32) -> Span {
        Span { start, len }
    }

    impl Guest for Hostile {
        fn schema(config: String) -> Result<Vec<Table>, Error> {
            let config: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
            // `tables`: declares that many tables, `t0`, `t1`, ….
            if let Some(n) = config["tables"].as_u64() {
                return Ok((0..n)
                    .map(|i| Table {
                        name: format!("t{i}"),
                        primary_key: vec!["id".into()],
                        columns: vec![Column {
                            name: "id".into(),
                            data_type: DataType::String,
                        }],
                    })
                    .collect());
            }
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
                "headers" => {
                    let url = config["url"].as_str().unwrap_or_default().to_owned();
                    for pair in config["guest_headers"].as_array().into_iter().flatten() {
                        let name = pair[0].as_str().unwrap_or_default().to_owned();
                        let value = pair[1].as_str().unwrap_or_default().to_owned();
                        let answer = host::http_fetch(&Request {
                            method: Method::Get,
                            url: url.clone(),
                            headers: vec![(name.clone(), value)],
                            body: None,
                        });
                        match answer {
                            Err(HttpError::InvalidRequest(why)) => host::log(
                                LogLevel::Info,
                                &format!("refused as expected: {name}: {why}"),
                            ),
                            other => {
                                return Err(Error::Other(format!(
                                    "header {name} not refused: {:?}",
                                    other.map(|r| r.status)
                                )));
                            }
                        }
                    }
                    Ok(())
                }
                "echo-config" => {
                    host::log(LogLevel::Info, &format!("config seen: {config}"));
                    Ok(())
                }
                "checkpoint-loop" => {
                    for n in 1u64.. {
                        host::checkpoint(&format!(r#"{{"n":{n}}}"#))
                            .map_err(|e| Error::Destination(format!("{e:?}")))?;
                    }
                    Ok(())
                }
                "methods" => {
                    let url = config["url"].as_str().unwrap_or_default().to_owned();
                    for name in config["methods"].as_array().into_iter().flatten() {
                        let name = name.as_str().unwrap_or_default();
                        let method = match name {
                            "PUT" => Method::Put,
                            "PATCH" => Method::Patch,
                            "DELETE" => Method::Delete,
                            "POST" => Method::Post,
                            "HEAD" => Method::Head,
                            _ => Method::Get,
                        };
                        let answer = host::http_fetch(&Request {
                            method,
                            url: url.clone(),
                            headers: vec![],
                            body: None,
                        });
                        let line = match answer {
                            Ok(r) => format!("sent {name}: {}", r.status),
                            Err(HttpError::Denied(why)) => format!("refused {name}: {why}"),
                            Err(e) => format!("failed {name}: {e:?}"),
                        };
                        host::log(LogLevel::Info, &line);
                    }
                    Ok(())
                }
                "sleep" => {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                    Ok(())
                }
                "refused-loop" => loop {
                    let _ = host::http_fetch(&Request {
                        method: Method::Get,
                        url: "http://169.254.169.254/latest/meta-data".into(),
                        headers: vec![],
                        body: None,
                    });
                },
                "log-loop" => loop {
                    host::log(LogLevel::Debug, "still here");
                },
                "busy" => loop {
                    host::upsert("user", &batch(vec!["id".into()], &[], vec![]))
                        .map_err(|e| Error::Destination(format!("{e:?}")))?;
                },
                "noisy" => {
                    host::log(LogLevel::Error, "\x1b]0;pwned\x07\x1b[2J\rforged line");
                    host::log(LogLevel::Error, &"x".repeat(1 << 20));
                    for i in 0..100_000 {
                        host::log(
                            LogLevel::Error,
                            &format!("line {i} \x1b[31m{}", "y".repeat(100)),
                        );
                    }
                    use std::io::Write;
                    let chunk = "\x1b[2Jstderr flood ".repeat(1000);
                    for _ in 0..1000 {
                        let _ = std::io::stderr().write_all(chunk.as_bytes());
                    }
                    Err(Error::BadResponse(
                        "HTTP 500: \x1b]0;pwned\x07\x1b[2J\r\u{202e}forged".into(),
                    ))
                }
                "columns" => {
                    let fields = config["fields"].as_u64().unwrap_or(2500) as usize;
                    let mut columns: Vec<String> = vec![
                        "id".into(),
                        "ID".into(),
                        "Id".into(),
                        "name\0hidden".into(),
                        "_INCSYNC_state".into(),
                        "_incsync_overflow".into(),
                    ];
                    columns.extend((0..fields).map(|i| format!("field_{i}")));
                    let row: Vec<Value> = columns
                        .iter()
                        .enumerate()
                        .map(|(i, _)| {
                            if i == 0 {
                                Value::String(span(0, 1))
                            } else {
                                Value::Integer(i as i64)
                            }
                        })
                        .collect();
                    host::upsert("user", &batch(columns, &row, b"1".to_vec()))
                        .map_err(|e| Error::Destination(format!("{e:?}")))?;
                    host::checkpoint(r#"{"n":1}"#).map_err(|e| Error::Destination(format!("{e:?}")))
                }
                "swallow" => {
                    for _ in 0..3 {
                        if let Err(e) = host::upsert("user", &rows(1..=3)) {
                            host::log(LogLevel::Error, &format!("guest saw: {e:?}"));
                        }
                        if let Err(e) = host::checkpoint(r#"{"n":1}"#) {
                            host::log(LogLevel::Error, &format!("guest saw: {e:?}"));
                        }
                    }
                    Ok(())
                }
                "escape-state" => host::checkpoint("\x1b]0;pwned\x07\x1b[2J\u{202e}state")
                    .map_err(|e| Error::Destination(format!("{e:?}"))),
                "big-state" => {
                    let mb = config["state_mb"].as_u64().unwrap_or(64) as usize;
                    let state = format!("\"{}\"", "s".repeat(mb << 20));
                    host::checkpoint(&state).map_err(|e| Error::Destination(format!("{e:?}")))
                }
                "spans" => {
                    let cells = config["cells"].as_u64().unwrap_or(64) as u32;
                    let mut text = "x".repeat(1 << 20).into_bytes();
                    text.extend_from_slice(b"0123456789");
                    let mut values = vec![];
                    for i in 0..cells {
                        // Keys of 1–4 digits from the tail, names the whole MiB.
                        let digits = 1 + i % 4;
                        values.push(Value::String(span((1 << 20) + 10 - digits, digits)));
                        values.push(Value::String(span(0, 1 << 20)));
                    }
                    let batch = batch(vec!["id".into(), "name".into()], &values, text);
                    host::upsert("user", &batch)
                        .map_err(|e| Error::Destination(format!("{e:?}")))?;
                    host::checkpoint(r#"{"n":1}"#).map_err(|e| Error::Destination(format!("{e:?}")))
                }
                "bad-batches" => {
                    let two = |values: &[Value], text: &[u8]| {
                        batch(vec!["id".into(), "name".into()], values, text.to_vec())
                    };
                    let id = Value::String(span(0, 1));
                    let coded = |kinds: Vec<u8>, words: Vec<u64>| RowBatch {
                        kinds,
                        words,
                        ..two(&[], b"1")
                    };
                    let bad = [
                        two(&[id], b"1"),
                        two(&[id, Value::Null], b"1\xff"),
                        two(&[id, Value::Json(span(1, 9))], b"1{}"),
                        two(&[id, Value::String(span(1, 1))], "1é".as_bytes()),
                        batch(vec![], &[], vec![]),
                        coded(vec![CellKind::String as u8, 9], vec![1 << 32, 0]),
                        coded(
                            vec![CellKind::String as u8, CellKind::Boolean as u8],
                            vec![1 << 32, 2],
                        ),
                        coded(
                            vec![CellKind::String as u8, CellKind::Null as u8],
                            vec![1 << 32],
                        ),
                    ];
                    for b in &bad {
                        if let Err(e) = host::upsert("user", b) {
                            host::log(LogLevel::Error, &format!("guest saw: {e:?}"));
                        }
                    }
                    Ok(())
                }
                other => Err(Error::InvalidConfig(format!("unknown behaviour `{other}`"))),
            }
        }
    }

    export!(Hostile);
}
