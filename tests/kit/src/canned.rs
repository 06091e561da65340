//! A canned HTTP server on loopback: every request is recorded and answered
//! by the test's handler, one connection per request. For the scenarios the
//! sample API does not play (an API that echoes credentials, compresses
//! oddly, redirects, or refuses), so that no test hand-rolls HTTP.
//!
//! ```no_run
//! use incsync_testkit::canned::{Canned, Reply};
//! let api = Canned::start(|req| Reply::json(200, &serde_json::json!({"path": req.target})));
//! assert!(api.url.starts_with("http://127.0.0.1:"));
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A request as the server got it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `POST`, ….
    pub method: String,
    /// The request target: path and query (`/items?page=2`).
    pub target: String,
    /// The headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body (by `Content-Length`).
    pub body: Vec<u8>,
}

impl Seen {
    /// The value of header `name` (lower case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The request's head as text, for assertions on what it carried.
    pub fn head(&self) -> String {
        let mut s = format!("{} {}\n", self.method, self.target);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\n"));
        }
        s
    }
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the body is left unfinished: its `Content-Length` says one
    /// byte more than is sent, and the connection stays open a minute (an
    /// API that stalls mid-answer).
    pub stall: bool,
}

impl Reply {
    /// `status` with `body` as JSON.
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            stall: false,
        }
    }

    /// `status` with no body.
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            stall: false,
        }
    }

    /// The same reply, left unfinished (see [`Reply::stall`]).
    pub fn stalled(mut self) -> Reply {
        self.stall = true;
        self
    }

    /// The same body compressed with `encoding` (`deflate`, `gzip`), and
    /// `Content-Encoding` saying so.
    pub fn encoded(mut self, encoding: &str) -> Reply {
        use std::io::Write as _;
        let body = match encoding {
            "deflate" => {
                let mut z = flate2::write::ZlibEncoder::new(Vec::new(), Default::default());
                z.write_all(&self.body).expect("in memory");
                z.finish().expect("in memory")
            }
            "gzip" => {
                let mut z = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                z.write_all(&self.body).expect("in memory");
                z.finish().expect("in memory")
            }
            other => panic!("no encoder for {other}"),
        };
        self.body = body;
        self.header("Content-Encoding", encoding)
    }

    /// Adds header `name: value`.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A running canned server; it lives as long as the test process.
pub struct Canned {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Canned {
    /// Starts a server answering each request with `handler`.
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Canned {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let handler: Arc<Handler> = Arc::new(handler);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (log, handler) = (log.clone(), handler.clone());
                std::thread::spawn(move || {
                    let Some(request) = read_request(&stream) else {
                        return;
                    };
                    log.lock().expect("the log").push(request.clone());
                    let reply = handler(&request);
                    let _ = write_reply(&stream, &reply);
                });
            }
        });
        Canned { url, seen }
    }

    /// Every request so far, in the order they came.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("the log").clone()
    }
}

fn read_request(stream: &std::net::TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        target,
        headers,
        body,
    })
}

fn write_reply(mut stream: &std::net::TcpStream, reply: &Reply) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len() + usize::from(reply.stall)
    ));
    stream.write_all(head.as_bytes())?;
    stream.write_all(&reply.body)?;
    stream.flush()?;
    if reply.stall {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A config of one `next_page_url` stream over `Link` headers into table
/// `item` (a bare JSON list per page, no retries), for a canned API at
/// `base`: `columns` are the stream's, `extra` adds or replaces top-level
/// keys (`auth`, `headers`, `allowed_hosts`, `http`).
pub fn link_config(
    base: &str,
    path: &str,
    columns: serde_json::Value,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut config = serde_json::json!({
        "base_url": base,
        "http": {"retries": 0},
        "streams": [{
            "table": "item", "strategy": "next_page_url", "path": path,
            "link_header": true, "records_path": "",
            "order_by_param": "", "order_type_param": "",
            "columns": columns
        }]
    });
    if let Some(extra) = extra.as_object() {
        for (k, v) in extra {
            config[k] = v.clone();
        }
    }
    config
}
