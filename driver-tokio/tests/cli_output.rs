//! `meridian-node`'s commands and a stdout that fails: a reader that went away (`| head`)
//! is no error, anything else (a full disk) is said on stderr and exits 1. Until session
//! 14 both panicked (exit 101).

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_meridian-node");

fn certs(stdout: Stdio, tag: &str) -> std::process::Output {
    let dir =
        std::env::temp_dir().join(format!("meridian-node-certs-{tag}-{}", std::process::id()));
    let out = Command::new(BIN)
        .arg("certs")
        .arg("--out")
        .arg(&dir)
        .stdout(stdout)
        .output()
        .unwrap();
    // The command's work is done whatever became of its stdout.
    assert!(dir.join("ca.pem").exists() && dir.join("worker.key").exists());
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn a_reader_that_went_away_is_no_error() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = certs(Stdio::from(writer), "pipe");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_stdout_that_fails_otherwise_exits_1_and_says_so() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // no /dev/full here (not Linux): nothing to test with
    };
    let out = certs(Stdio::from(full), "full");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stdout"), "{err}");
}
