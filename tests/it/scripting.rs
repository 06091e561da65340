//! Scripts and habits: `--stream` on `run`, `state` and `reset`, `--json`
//! output, the documented exit codes, and shell completions.

use incsync_testkit::{World, incsync};
use serde_json::{Value, json};
use std::process::Output;

fn two_streams() -> World {
    World::new(
        80,
        json!([
            {"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"},
            {"name": "by_key", "table": "user_by_key", "strategy": "keyset", "path": "/pagination/keyset"}
        ]),
    )
}

fn json_out(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn state(w: &World, stream: Option<&str>) -> Value {
    let mut cmd = incsync();
    cmd.args(["state", "--json", "--warehouse"])
        .arg(&w.warehouse);
    if let Some(s) = stream {
        cmd.args(["--stream", s]);
    }
    let out = cmd.output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim().lines().count(),
        1,
        "--json prints one line"
    );
    json_out(&out)
}

#[test]
fn one_stream_is_synced_read_and_reset_alone() {
    let w = two_streams();
    let report = json_out(&w.run_with(["--json", "--stream", "by_key"]));
    assert_eq!(report["rows_upserted"], json!({"user_by_key": 80}));
    let saved = state(&w, None);
    assert!(saved["streams"]["by_key"].is_object(), "{saved}");
    assert!(saved["streams"].get("user").is_none(), "{saved}");

    let report = json_out(&w.run_with(["--json", "--stream", "user"]));
    assert_eq!(report["rows_upserted"], json!({"user": 80}));
    let saved = state(&w, None);
    assert!(
        saved["streams"]["by_key"].is_object() && saved["streams"]["user"].is_object(),
        "syncing one stream keeps the other's state: {saved}"
    );
    assert_eq!(state(&w, Some("user")), saved["streams"]["user"]);
    // A stream with no state is a typo (exit 2, naming the streams that
    // have some) unless the config has it; then `null`.
    for command in ["state", "reset"] {
        let out = incsync()
            .args([command, "--stream", "nobody", "--warehouse"])
            .arg(&w.warehouse)
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no stream `nobody`")
                && err.contains("that have: ")
                && err.contains("by_key")
                && err.contains("user"),
            "{command}: {err}"
        );
        let out = incsync()
            .args([command, "--stream", "nobody", "--config"])
            .arg(&w.config)
            .arg("--warehouse")
            .arg(&w.warehouse)
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "{command}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("its streams: user, by_key"),
            "{command}"
        );
    }
    let only_user = w.dir.path().join("fresh.json");
    std::fs::write(
        &only_user,
        json!({"base_url": w.api.url(), "streams": [
            {"name": "fresh", "table": "fresh", "strategy": "keyset", "path": "/pagination/keyset"}]})
        .to_string(),
    )
    .unwrap();
    let out = incsync()
        .args(["state", "--json", "--stream", "fresh", "--config"])
        .arg(&only_user)
        .arg("--warehouse")
        .arg(&w.warehouse)
        .output()
        .unwrap();
    assert_eq!(
        json_out(&out),
        Value::Null,
        "a configured stream with no state yet"
    );

    let out = incsync()
        .args(["reset", "--json", "--stream", "user", "--warehouse"])
        .arg(&w.warehouse)
        .output()
        .unwrap();
    assert_eq!(json_out(&out), json!({"stream": "user", "forgotten": true}));
    let saved = state(&w, None);
    assert!(saved["streams"].get("user").is_none(), "{saved}");
    assert!(saved["streams"]["by_key"].is_object(), "{saved}");

    // The whole run now re-reads only `user` from the start.
    let report = w.sync();
    assert_eq!(report["rows_upserted"]["user"], 80);
    assert!(report["rows_upserted"]["user_by_key"].as_u64().unwrap() < 80);
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

#[test]
fn exit_codes_tell_usage_from_sync_failure() {
    let w = two_streams();
    // 2: an unknown stream, a bad config key, a missing config, a bad flag.
    let out = w.run_with(["--stream", "nobody"]);
    assert_eq!(code(&out), 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no stream `nobody`") && err.contains("user, by_key"),
        "{err}"
    );
    // `component --out` to a folder that does not exist, and `schema` with a
    // bad host key, are the user's to fix too.
    let out = incsync()
        .args(["component", "--out", "/nonexistent/x.wasm"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", String::from_utf8_lossy(&out.stderr));
    let bad = w.dir.path().join("bad-http.json");
    std::fs::write(
        &bad,
        json!({"base_url": w.api.url(), "http": {"retries": "a"}, "streams": []}).to_string(),
    )
    .unwrap();
    let out = incsync()
        .args(["schema", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("retries"));
    assert_eq!(
        code(&incsync().args(["run", "--bogus"]).output().unwrap()),
        2
    );
    let out = incsync()
        .args(["run", "--config", "/nonexistent/c.json", "--warehouse"])
        .arg(&w.warehouse)
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    let out = incsync()
        .args(["state", "--warehouse", "/nonexistent/w.db"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    w.write_config(json!({"base_url": w.api.url(), "streams": [{"table": "user", "strategy": "sometimes", "path": "/p"}]}));
    assert_eq!(code(&w.run()), 2, "the connector's invalid-config");
    w.write_config(json!({"base_url": w.api.url(), "http": {"retries": -1}, "streams": []}));
    assert_eq!(code(&w.run()), 2, "a host key");
    // 1: the sync itself failed.
    w.write_config(json!({"base_url": w.api.url(), "streams": [{"table": "user", "strategy": "timestamp", "path": "/no/such/endpoint"}]}));
    assert_eq!(code(&w.run()), 1);
    // 0.
    w.write_config(json!({"base_url": w.api.url(), "streams": [{"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"}]}));
    assert_eq!(code(&w.run()), 0);
    // --help documents them.
    let help = incsync().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("Exit codes:")
            && help.contains("3  another sync holds the lease of a stream"),
        "{help}"
    );
}

#[test]
fn completions_for_every_shell_the_help_names() {
    let help = incsync().args(["completions", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for (shell, needle, flag) in [
        ("bash", "complete -F", "--stream"),
        ("zsh", "#compdef incsync", "--stream"),
        ("fish", "complete -c incsync", "-l stream"),
        (
            "elvish",
            "edit:completion:arg-completer[incsync]",
            "--stream",
        ),
        ("powershell", "Register-ArgumentCompleter", "--stream"),
    ] {
        assert!(help.contains(shell), "the help names {shell}: {help}");
        let out = incsync().args(["completions", shell]).output().unwrap();
        assert!(out.status.success());
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(needle), "{shell}: {script}");
        assert!(script.contains(flag), "{shell} knows the flags");
    }
    assert_eq!(
        code(&incsync().args(["completions", "tcsh"]).output().unwrap()),
        2
    );
}

#[test]
fn json_and_the_summary_report_every_stream_when_one_fails() {
    let w = World::new(
        80,
        json!([
            {"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"},
            {"name": "broken", "table": "user_by_key", "strategy": "keyset", "path": "/no/such/endpoint"}
        ]),
    );
    let out = w.run_with(["--json", "--parallel", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["ok"], false);
    assert_eq!(report["exit_code"], 1);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("stream `broken`"),
        "{report}"
    );
    let (user, broken) = (&report["streams"][0], &report["streams"][1]);
    assert_eq!(user["ok"], true, "{report}");
    assert_eq!(user["rows_upserted"], json!({"user": 80}));
    assert!(user["state"]["last_timestamp"].is_string(), "{report}");
    assert_eq!(broken["ok"], false);
    assert!(
        broken["error"].as_str().unwrap().contains("404"),
        "{report}"
    );
    assert!(broken["state"].is_null(), "{report}");

    // The summary has a line per stream, the failed one with its error.
    let out = w.run_with(["--parallel", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.starts_with("1 of 2 streams failed"), "{summary}");
    assert!(
        summary
            .lines()
            .any(|l| l.contains("stream broken") && l.contains("FAILED: ") && l.contains("404")),
        "{summary}"
    );
    assert!(
        summary
            .lines()
            .any(|l| l.contains("stream user") && !l.contains("FAILED")),
        "{summary}"
    );

    // A config error: nothing ran, and `--json` still prints JSON.
    std::fs::write(
        &w.config,
        json!({"base_url": w.api.url(), "http": {"retries": "a"}, "streams": []}).to_string(),
    )
    .unwrap();
    let out = w.run_with(["--json"]);
    assert_eq!(out.status.code(), Some(2));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(printed["exit_code"], 2);
    assert!(
        printed["error"].as_str().unwrap().contains("retries"),
        "{printed}"
    );
}

#[test]
fn a_config_error_in_one_stream_of_several_exits_2() {
    // The body template passes the config check, but the first request's
    // `since` (a timestamp) is not the number it asks for: an
    // invalid config found while the streams run.
    let w = World::new(
        80,
        json!([
            {"table": "user", "strategy": "timestamp", "path": "/incremental/timestamp"},
            {"name": "broken", "table": "user_by_key", "strategy": "keyset", "path": "/no/such/endpoint"},
            {"name": "bad_body", "table": "posted", "strategy": "timestamp", "path": "/incremental/timestamp",
             "method": "POST", "body": {"since": "{since:number}"}}
        ]),
    );
    let out = w.run_with(["--json", "--parallel", "1"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(code(&out), 2, "{report}");
    assert_eq!(report["exit_code"], 2);
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("stream `broken`") && error.contains("bad_body") && error.contains("number"),
        "{error}"
    );
    assert_eq!(
        report["streams"][0]["ok"], true,
        "the good stream still ran"
    );
}
