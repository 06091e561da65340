//! A throwaway PostgreSQL server for the tests: `initdb` and `pg_ctl` from
//! the machine's PostgreSQL (as the `postgres` user when the tests run as
//! root, since initdb refuses root), listening on 127.0.0.1 on a free port,
//! with password authentication over TCP. Stopped and removed when dropped.
//!
//! There is no skipping: if no server can be started, the test fails with
//! the reason (CI installs the `postgresql` package).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The superuser's password.
pub const PASSWORD: &str = "incsync-test-pw";

pub struct Postgres {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    pub port: u16,
}

/// The directory of `initdb` and `pg_ctl`.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("INCSYNC_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    if let Some(newest) = found.pop() {
        return newest;
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    }
    panic!(
        "no PostgreSQL server binaries (initdb) found in /usr/lib/postgresql/*/bin or by pg_config: \
         install the `postgresql` package (.ci/run does), or set INCSYNC_PG_BIN"
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs `program` as the server's owner: `postgres` when we are root.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postgres {
    /// Starts a new cluster.
    pub fn start() -> Postgres {
        use std::os::unix::fs::PermissionsExt;
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        // The server's user must be able to enter the directory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o644)).unwrap();
        if is_root() {
            std::fs::create_dir(&data).unwrap();
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:").arg(&data);
                    c
                },
                "chown postgres the data directory",
            );
        }
        let mut initdb = as_owner(&bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["-E", "UTF8", "--no-sync"]);
        run(initdb, "initdb");
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut ctl = as_owner(&bin.join("pg_ctl"));
            ctl.arg("-D")
                .arg(&data)
                .arg("-o")
                .arg(format!(
                    "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={} -c fsync=off",
                    data.display()
                ))
                .arg("-l")
                .arg(data.join("server.log"))
                .args(["-w", "-t", "30", "start"]);
            let out = ctl.output().expect("run pg_ctl");
            if out.status.success() {
                return Postgres {
                    _dir: dir,
                    data,
                    bin,
                    port,
                };
            }
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                std::fs::read_to_string(data.join("server.log")).unwrap_or_default()
            );
        }
        panic!("pg_ctl start failed three times: {last}");
    }

    /// A URL for `database` as the superuser, with the password in it.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// The same URL without its password.
    pub fn url_without_password(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A client on `database`.
    pub fn client(&self, database: &str) -> postgres::Client {
        postgres::Client::connect(&self.url(database), postgres::NoTls).unwrap()
    }

    /// Creates a fresh database and returns its URL.
    pub fn database(&self, name: &str) -> String {
        self.client("postgres")
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap();
        self.url(name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut ctl = as_owner(&self.bin.join("pg_ctl"));
        ctl.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = ctl.output();
    }
}
