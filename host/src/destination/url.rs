//! `--warehouse`: where a sync writes, as a path or a URL.
//!
//! | form | warehouse |
//! |---|---|
//! | `PATH`, `sqlite:PATH` | a SQLite file (created if missing) |
//! | `postgres://user[:pass]@host[:port]/db`, `postgresql://…` | a PostgreSQL database; without a password in the URL, `PGPASSWORD` or the password file (`PGPASSFILE`, else `~/.pgpass`; ignored with a warning if its group or others may read it) supplies it, as psql does |
//! | `jsonl:DIR`, `jsonl:-` | one JSON-lines file per table in DIR (created if missing), or every line on standard output |

use std::path::PathBuf;

/// A parsed `--warehouse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warehouse {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its connection URL (password resolved).
    Postgres(PostgresUrl),
    /// JSON lines, into a directory or standard output.
    Jsonl(JsonlTarget),
}

/// Where JSON lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonlTarget {
    /// One file per table in this directory.
    Dir(PathBuf),
    /// Standard output.
    Stdout,
}

/// A PostgreSQL connection URL.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    /// The URL as given, for the client.
    pub url: String,
    /// The host, for messages.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The database.
    pub database: String,
    /// The user.
    pub user: String,
    /// The password, if the URL or the environment gives one.
    pub password: Option<String>,
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for PostgresUrl {
    /// The URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "postgres://{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

impl std::fmt::Display for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warehouse::Sqlite(p) => write!(f, "{}", p.display()),
            Warehouse::Postgres(u) => write!(f, "{u}"),
            Warehouse::Jsonl(JsonlTarget::Dir(d)) => write!(f, "jsonl:{}", d.display()),
            Warehouse::Jsonl(JsonlTarget::Stdout) => write!(f, "jsonl:-"),
        }
    }
}

/// Where `${VAR}`-style lookups of the password come from.
pub trait PasswordSource {
    /// An environment variable.
    fn var(&self, name: &str) -> Option<String>;
    /// The password file's text, if there is one (`PGPASSFILE`, else
    /// `~/.pgpass`).
    fn passfile(&self) -> Option<String>;
}

/// The process's environment and home directory.
pub struct ProcessPasswords;

impl PasswordSource for ProcessPasswords {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    fn passfile(&self) -> Option<String> {
        let path = match self.var("PGPASSFILE") {
            Some(p) => PathBuf::from(p),
            None => PathBuf::from(self.var("HOME")?).join(".pgpass"),
        };
        read_passfile(&path)
    }
}

/// The password file at `path`, read as libpq reads it: not at all if it is
/// not a plain file, or if its group or others may read or write it (the
/// passwords may have leaked, and psql would ignore it too), with a warning.
fn read_passfile(path: &std::path::Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        tracing::warn!(
            "password file {} is not a plain file; ignored",
            path.display()
        );
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "password file {} has group or world access; ignored (permissions should be u=rw (0600) or less)",
                path.display()
            );
            return None;
        }
    }
    std::fs::read_to_string(path).ok()
}

impl Warehouse {
    /// Parses `--warehouse`, resolving a PostgreSQL password from the
    /// process's environment.
    pub fn parse(text: &str) -> Result<Warehouse, String> {
        Self::parse_with(text, &ProcessPasswords)
    }

    /// Parses `--warehouse` with `passwords` for a PostgreSQL password.
    pub fn parse_with(text: &str, passwords: &dyn PasswordSource) -> Result<Warehouse, String> {
        if text.is_empty() {
            return Err(
                "--warehouse is empty: give a file, sqlite:PATH, postgres://… or jsonl:DIR".into(),
            );
        }
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err("`sqlite:` names no file".into());
            }
            return Ok(Warehouse::Sqlite(PathBuf::from(path)));
        }
        if let Some(dir) = text.strip_prefix("jsonl:") {
            return match dir {
                "" => Err("`jsonl:` names no directory (use `jsonl:-` for standard output)".into()),
                "-" => Ok(Warehouse::Jsonl(JsonlTarget::Stdout)),
                d => Ok(Warehouse::Jsonl(JsonlTarget::Dir(PathBuf::from(d)))),
            };
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return postgres(text, passwords).map(Warehouse::Postgres);
        }
        // Never a file named `postgres:…`: a URL missing its `//` is a typo.
        if let Some((scheme, _)) = text.split_once(':')
            && (scheme.eq_ignore_ascii_case("postgres")
                || scheme.eq_ignore_ascii_case("postgresql"))
        {
            return Err(format!(
                "`{}` is not a PostgreSQL URL: write {scheme}://user@host:port/db",
                redact(text)
            ));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!(
                "`{scheme}://` is not a warehouse; use a file, sqlite:PATH, postgres://… or jsonl:DIR"
            ));
        }
        Ok(Warehouse::Sqlite(PathBuf::from(text)))
    }
}

/// The query options the PostgreSQL client understands
/// (`?connect_timeout=5`); any other is a typo to report, not to ignore.
const QUERY_OPTIONS: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslmode",
    "sslnegotiation",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

fn postgres(text: &str, passwords: &dyn PasswordSource) -> Result<PostgresUrl, String> {
    let shown = redact(text);
    let url = url::Url::parse(text).map_err(|e| format!("`{shown}` is not a URL: {e}"))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("`{shown}` names no host"))?
        .to_owned();
    if let Some((option, _)) = url
        .query_pairs()
        .find(|(k, _)| !QUERY_OPTIONS.contains(&k.as_ref()))
    {
        return Err(format!(
            "`{shown}`: unknown option `{option}` (known: {})",
            QUERY_OPTIONS.join(", ")
        ));
    }
    let port = url.port().unwrap_or(5432);
    let database = url.path().trim_start_matches('/').to_owned();
    if database.is_empty() || database.contains('/') {
        return Err(format!(
            "`{shown}` must name one database: postgres://user@host:port/db"
        ));
    }
    let user = match url.username() {
        "" => passwords
            .var("PGUSER")
            .or_else(|| passwords.var("USER"))
            .ok_or_else(|| format!("`{shown}` names no user"))?,
        u => percent(u)?,
    };
    let password = match url.password() {
        Some(p) => Some(percent(p)?),
        None => passwords.var("PGPASSWORD").or_else(|| {
            passwords
                .passfile()
                .and_then(|file| pgpass(&file, &host, port, &database, &user))
        }),
    };
    Ok(PostgresUrl {
        url: text.to_owned(),
        host,
        port,
        database,
        user,
        password,
    })
}

fn percent(s: &str) -> Result<String, String> {
    percent_decode(s)
        .ok_or_else(|| "the URL's user or password is not valid percent-encoding".into())
}

/// `s` with its `%XX` escapes decoded, if they are valid and make UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The URL with its password replaced by `***`, in its user part and in
/// its query (`?password=…`, `?sslpassword=…`). A URL that does not parse is
/// shown only up to its `@` or `?`, where a password could start.
pub fn redact(text: &str) -> String {
    let Ok(mut u) = url::Url::parse(text) else {
        let cut = text.find(['@', '?']).unwrap_or(text.len());
        let tail = if cut < text.len() { "…" } else { "" };
        return format!("{}{tail}", &text[..cut]);
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    let secret =
        |k: &str| k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword");
    if u.query_pairs().any(|(k, _)| secret(&k)) {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// The password for (host, port, database, user) in a password file's text,
/// as libpq reads it: `hostname:port:database:username:password` lines, `*`
/// matching anything, `\:` and `\\` escaped, `#` comments; the first match
/// wins.
fn pgpass(file: &str, host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    for line in file.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::with_capacity(5);
        let mut field = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => field.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                c => field.push(c),
            }
        }
        fields.push(field);
        if fields.len() != 5 {
            continue;
        }
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        let local = host == "localhost" || host == "127.0.0.1" || host.starts_with('/');
        let host_ok = matches(&fields[0], host) || (fields[0] == "localhost" && local);
        if host_ok
            && matches(&fields[1], &port)
            && matches(&fields[2], database)
            && matches(&fields[3], user)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Fake(HashMap<&'static str, &'static str>, Option<&'static str>);

    impl PasswordSource for Fake {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
        fn passfile(&self) -> Option<String> {
            self.1.map(str::to_owned)
        }
    }

    fn none() -> Fake {
        Fake(HashMap::new(), None)
    }

    #[test]
    fn paths_and_urls_name_their_warehouse() {
        let p = |t| Warehouse::parse_with(t, &none());
        assert_eq!(p("w.db"), Ok(Warehouse::Sqlite("w.db".into())));
        assert_eq!(p("sqlite:w.db"), Ok(Warehouse::Sqlite("w.db".into())));
        assert_eq!(
            p("sqlite:///tmp/w.db"),
            Ok(Warehouse::Sqlite("/tmp/w.db".into()))
        );
        assert_eq!(
            p("jsonl:out"),
            Ok(Warehouse::Jsonl(JsonlTarget::Dir("out".into())))
        );
        assert_eq!(p("jsonl:-"), Ok(Warehouse::Jsonl(JsonlTarget::Stdout)));
        let Ok(Warehouse::Postgres(u)) = p("postgresql://ann:s%40cret@db.internal:6543/sales")
        else {
            panic!("a postgres URL")
        };
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.database.as_str(),
                u.user.as_str()
            ),
            ("db.internal", 6543, "sales", "ann")
        );
        assert_eq!(u.password.as_deref(), Some("s@cret"));
        assert_eq!(u.to_string(), "postgres://ann@db.internal:6543/sales");
        assert!(
            !format!("{u:?}").contains("cret"),
            "Debug hides the password"
        );
    }

    #[test]
    fn bad_warehouses_say_what_is_wrong() {
        let e = |t| Warehouse::parse_with(t, &none()).unwrap_err();
        assert!(e("mysql://x/y").contains("`mysql://` is not a warehouse"));
        assert!(e("postgres://ann@host").contains("must name one database"));
        assert!(
            e("postgres://ann:pw@:5/db").contains("names no host")
                || e("postgres://ann:pw@:5/db").contains("is not a URL")
        );
        assert!(
            !e("postgres://ann:hunter2@host").contains("hunter2"),
            "no password in errors"
        );
        assert!(e("sqlite:").contains("names no file"));
        for typo in [
            "postgresql:analytics",
            "postgres:/h/db",
            "POSTGRES:db",
            "postgres:",
        ] {
            assert!(
                e(typo).contains("is not a PostgreSQL URL"),
                "{typo}: {}",
                e(typo)
            );
        }
        let bogus = e("postgres://ann@h/db?connect_timeout=3&bogus=1");
        assert!(bogus.contains("unknown option `bogus`"), "{bogus}");
        assert!(Warehouse::parse_with("postgres://ann@h/db?connect_timeout=3", &none()).is_ok());
        assert!(e("jsonl:").contains("names no directory"));
        assert!(e("").contains("empty"));
    }

    #[cfg(unix)]
    #[test]
    fn a_password_file_others_may_read_is_ignored_as_libpq_does() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:secret\n").unwrap();
        for (mode, read) in [(0o600, true), (0o400, true), (0o640, false), (0o604, false)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(super::read_passfile(&path).is_some(), read, "mode {mode:o}");
        }
        assert_eq!(super::read_passfile(dir.path()), None, "a directory");
    }

    #[test]
    fn the_password_comes_from_pgpassword_or_the_password_file() {
        let env = Fake(HashMap::from([("PGPASSWORD", "fromenv")]), None);
        let Ok(Warehouse::Postgres(u)) = Warehouse::parse_with("postgres://ann@h/db", &env) else {
            panic!()
        };
        assert_eq!(u.password.as_deref(), Some("fromenv"));
        let file =
            "# comment\nother:5432:*:*:nope\nh:5432:db:ann:fr\\:om\\\\file\n*:*:*:*:fallback\n";
        let env = Fake(HashMap::new(), Some(file));
        let Ok(Warehouse::Postgres(u)) = Warehouse::parse_with("postgres://ann@h/db", &env) else {
            panic!()
        };
        assert_eq!(u.password.as_deref(), Some("fr:om\\file"));
        let Ok(Warehouse::Postgres(u)) = Warehouse::parse_with("postgres://bob@h:7/db", &env)
        else {
            panic!()
        };
        assert_eq!(u.password.as_deref(), Some("fallback"));
        let Ok(Warehouse::Postgres(u)) = Warehouse::parse_with("postgres://ann:inurl@h/db", &env)
        else {
            panic!()
        };
        assert_eq!(u.password.as_deref(), Some("inurl"), "the URL wins");
    }
}
