//! RELIABILITY.md case 49: the connection is lost during a part's COMMIT, after the server
//! committed but before its answer reached ferry. A TCP proxy between ferry and the real
//! PostgreSQL server (see postgres.rs for the server and the CI rule) forwards the COMMIT of
//! the second part, holds back the server's answer and then closes both sockets. ferry must
//! fail with a temporary error (exit 75), reconnect, read the ledger and say that the part
//! did commit, with the true count; a re-run completes exactly once.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::common::{ferry, fixture, wait_until};
use crate::servers::{PgDb, psql};

/// What the proxy saw, shared by its threads and the test.
#[derive(Default)]
struct Seen {
    /// The part commit (1-based, counted over every connection) whose answer is cut off.
    cut_at: usize,
    /// COMMITs of transactions that ran a COPY (a part's load) seen so far.
    part_commits: AtomicUsize,
    /// The cut happened (once; later connections are relayed as they are).
    cut: AtomicBool,
    /// The server answered the cut COMMIT with `COMMIT` (and ferry never got it).
    answered: AtomicBool,
    connections: AtomicUsize,
    log: Mutex<Vec<String>>,
}

impl Seen {
    fn note(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }
}

/// Splits complete protocol messages off the front of `buf`: `(type, whole message bytes)`.
/// `typed` is false for the startup message (no type byte).
fn next_message(buf: &mut Vec<u8>, typed: bool) -> Option<(u8, Vec<u8>)> {
    let head = usize::from(typed);
    if buf.len() < head + 4 {
        return None;
    }
    let len = u32::from_be_bytes(buf[head..head + 4].try_into().unwrap()) as usize;
    if buf.len() < head + len {
        return None;
    }
    let msg: Vec<u8> = buf.drain(..head + len).collect();
    Some((if typed { msg[0] } else { 0 }, msg))
}

/// Listens on 127.0.0.1:0 and relays every connection to `upstream`.
fn start_proxy(upstream: String, seen: Arc<Seen>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(&upstream) else {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            };
            let n = seen.connections.fetch_add(1, Ordering::SeqCst) + 1;
            seen.note(format!("connection {n} opened"));
            relay(client, server, Arc::clone(&seen), n);
        }
    });
    port
}

fn relay(client: TcpStream, server: TcpStream, seen: Arc<Seen>, conn: usize) {
    let armed = Arc::new(AtomicBool::new(false));
    let (answered_tx, answered_rx) = mpsc::channel::<()>();
    // Server to client: message by message; once armed, nothing more goes to the client.
    {
        let (mut from, mut to) = (server.try_clone().unwrap(), client.try_clone().unwrap());
        let (armed, seen) = (Arc::clone(&armed), Arc::clone(&seen));
        std::thread::spawn(move || {
            let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 64 * 1024]);
            loop {
                let n = match from.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some((ty, msg)) = next_message(&mut buf, true) {
                    if !armed.load(Ordering::SeqCst) {
                        if to.write_all(&msg).is_err() {
                            return;
                        }
                        continue;
                    }
                    if ty == b'C' && msg[5..].starts_with(b"COMMIT\0") {
                        seen.answered.store(true, Ordering::SeqCst);
                    }
                    if ty == b'Z' {
                        seen.note(format!("connection {conn}: the server answered the COMMIT"));
                        let _ = answered_tx.send(());
                    }
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        });
    }
    // Client to server: watches for the COMMIT to cut.
    std::thread::spawn(move || {
        let (mut from, mut to) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 64 * 1024]);
        let (mut started, mut copied) = (false, false);
        loop {
            let n = match from.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            while let Some((ty, msg)) = next_message(&mut buf, started) {
                if !started {
                    let code = u32::from_be_bytes(msg[4..8].try_into().unwrap());
                    assert_ne!(
                        code, 80_877_103,
                        "SSLRequest: the proxy needs sslmode=disable"
                    );
                    started = true;
                }
                let mut cut = false;
                match (ty, &msg[msg.len().min(5)..]) {
                    (b'c', _) => copied = true,
                    (b'Q', b"ROLLBACK\0") => copied = false,
                    (b'Q', b"COMMIT\0") if copied => {
                        copied = false;
                        let k = seen.part_commits.fetch_add(1, Ordering::SeqCst) + 1;
                        seen.note(format!("connection {conn}: COMMIT of part {k}"));
                        cut = k == seen.cut_at && !seen.cut.swap(true, Ordering::SeqCst);
                    }
                    _ => {}
                }
                if cut {
                    armed.store(true, Ordering::SeqCst);
                }
                if to.write_all(&msg).is_err() {
                    return;
                }
                if cut {
                    // The server commits and answers; the answer is held back. Then the
                    // connection dies, as if the network had failed at that moment.
                    let got = answered_rx.recv_timeout(Duration::from_secs(120)).is_ok();
                    seen.note(format!(
                        "connection {conn}: cut after COMMIT (answer seen: {got})"
                    ));
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = server.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[test]
fn a_connection_lost_during_commit_is_reported_from_the_ledger() {
    let Some(dst) = PgDb::new("commitlost") else {
        return;
    };
    let fx = fixture();
    // ~4 MB of incompressible rows: several 1 MiB parts of one table.
    let src = fx.path("blobs.db");
    rusqlite::Connection::open(&src)
        .unwrap()
        .execute_batch(
            "CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB);
             WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 4000)
             INSERT INTO blobs SELECT i, randomblob(1000) FROM g;",
        )
        .unwrap();
    let b = fx.path("b");
    fx.export_to(
        &format!("sqlite://{}", src.display()),
        &b,
        &[
            "--max-part-size",
            "1MiB",
            "--batch-rows",
            "250",
            "--row-group-rows",
            "250",
        ],
    );
    let total = crate::common::manifest(&b)["parts"]
        .as_array()
        .unwrap()
        .len();
    assert!(total >= 3, "{total} parts: the test needs at least 3");

    let url = url::Url::parse(&dst.url).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let seen = Arc::new(Seen {
        cut_at: 2,
        ..Seen::default()
    });
    let port = start_proxy(upstream, Arc::clone(&seen));
    let mut via = url.clone();
    via.set_host(Some("127.0.0.1")).unwrap();
    via.set_port(Some(port)).unwrap();
    via.query_pairs_mut().append_pair("sslmode", "disable");
    let key = fx.key.to_str().unwrap();
    let import = |target: &str| {
        ferry()
            // One stream: the proxy cuts the connection at the second COMMIT it sees, which
            // the test then finds in the ledger as "2 parts committed".
            .args([
                "import",
                b.to_str().unwrap(),
                target,
                "--key-file",
                key,
                "--streams",
                "1",
            ])
            .timeout(Duration::from_secs(300))
            .output()
            .unwrap()
    };

    let out = import(via.as_str());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let log = seen.log.lock().unwrap().join("\n");
    assert!(seen.cut.load(Ordering::SeqCst), "no cut\n{log}\n{err}");
    assert!(
        seen.answered.load(Ordering::SeqCst),
        "the server did not answer the COMMIT with COMMIT\n{log}\n{err}"
    );
    assert_eq!(out.status.code(), Some(75), "{log}\n{err}");
    // The failed part's rows and ledger row are in; ferry says so, with the true count.
    let bundle_id = crate::common::manifest(&b)["bundle_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ledger = |what: &str| {
        psql(
            &dst.url,
            &format!("SELECT {what} FROM _ferry_ledger WHERE bundle_id = '{bundle_id}'"),
        )
    };
    assert_eq!(ledger("count(*)"), "2", "{err}");
    assert_eq!(
        psql(&dst.url, "SELECT count(*) FROM blobs"),
        ledger("sum(rows_loaded)"),
        "{err}"
    );
    let second = ledger("(array_agg(part_path ORDER BY loaded_at DESC))[1]");
    assert!(
        err.contains(&format!(
            "the connection was lost during COMMIT of part {second}"
        )) && err.contains("the ledger shows it committed")
            && err.contains(&format!("2/{total} parts of this bundle are committed"))
            && err.contains("re-run the same command to resume")
            && !err.contains("nothing from the failed part was committed"),
        "{err}"
    );

    // The cut connection's server session ends (its import lock goes with it); then a re-run
    // straight to the server loads the rest exactly once.
    wait_until("the cut session ends", Duration::from_secs(120), || {
        psql(
            &dst.url,
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
                dst.name
            ),
        ) == "0"
    });
    let out = import(&dst.url);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        psql(
            &dst.url,
            "SELECT count(*), count(DISTINCT id), sum(id), sum(length(b)) FROM blobs"
        ),
        "4000|4000|8002000|4000000"
    );
    assert_eq!(ledger("count(*)"), total.to_string());
    let out = import(&dst.url);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("already imported"), "{stdout}");
}
