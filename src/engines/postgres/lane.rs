//! The export's COPY lane: `COPY … TO STDOUT` on a connection of its own, opened with
//! tokio-postgres over a socket ferry opens and buffers itself, attached to the export's
//! snapshot.
//!
//! Why a second client: PostgreSQL sends one CopyData message per row. Through sqlx every
//! message costs a turn of its generator stream (a mutex, a span, a `Bytes` split), and its
//! TLS socket reads at most 4 KiB per system call; together some 15% of an export's CPU on
//! the bench table. Here tokio-postgres decodes all the messages of a read at once, and the
//! socket is read 256 KiB at a time under rustls.
//!
//! The lane is only a faster road to the same rows: the reader's sqlx connection still does
//! everything else (catalog, snapshot, locks), and reads a table itself whenever the lane
//! cannot be had:
//! - the URL or the environment asks for anything sqlx would do that the lane does not (a
//!   Unix socket, `sslmode` `allow`, `verify-ca` or `verify-full`, client or root
//!   certificates, `options`, a password only a passfile holds, any other URL parameter);
//! - the server has fewer than 8 connections to spare (4 under the role's limit), the
//!   lane's connection cannot be opened, or the snapshot it reads is not the reader's (a
//!   host name that resolves to another server);
//! - the read has a filter other than the reader's own page ranges (a `--where` or a
//!   chain's bounds: `now()` and the locks of a subquery stay the reader's transaction's);
//! - the reader's connection, then the lane, cannot take the table's ACCESS SHARE lock
//!   without waiting: a lock queued behind another session's would wait for a reader that
//!   waits for the lane (see `Source::lock_shared_nowait`), and with the reader's
//!   connection holding the lock too, its own later catalog reads of the table never queue;
//! - the COPY fails before its first row, a lock it needs not had within 2 s included (the
//!   lane gives its savepoint back, and the reader's connection meets and reports the same
//!   error, as it always did);
//! - `FERRY_PG_COPY_LANE=off` is set.
//!
//! TLS follows sqlx's `sslmode` exactly for the modes the lane takes: `disable` never,
//! `prefer` when the server offers it, `require` always; none of the three verifies the
//! server's certificate (sqlx does not either), only the handshake's signatures.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::TcpStream;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, TlsConnect};

/// Bytes read from the socket per system call, at most.
const READ_BUFFER: usize = 256 * 1024;
/// How long opening the lane may take before the reader goes on without it.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the lane waits for a lock before its table is read on the reader's connection.
const LOCK_TIMEOUT: Duration = Duration::from_secs(2);
/// Turns the lane off: every table is read on the reader's own connection.
pub const ENV_OFF: &str = "FERRY_PG_COPY_LANE";

/// An open lane: a client whose connection runs on the reader's runtime.
pub struct Lane {
    client: tokio_postgres::Client,
    /// The connection's I/O task: awaited on close, so the server sees a Terminate.
    task: tokio::task::JoinHandle<()>,
    /// The connection talks TLS (`prefer` takes it when the server offers it).
    pub tls: bool,
}

/// What the lane connects with, when it can take the URL as sqlx would.
struct Params {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    database: Option<String>,
    application_name: Option<String>,
    ssl: SslMode,
}

/// The URL's connection settings as sqlx resolves them (environment included), or `None`
/// (with the reason) when the lane would connect differently from sqlx.
fn params(url: &str) -> Result<Params, String> {
    if std::env::var(ENV_OFF).is_ok_and(|v| v.eq_ignore_ascii_case("off") || v == "0") {
        return Err(format!("{ENV_OFF}=off"));
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("the URL does not parse: {e}"))?;
    if let Some((k, _)) = parsed
        .query_pairs()
        .find(|(k, _)| k != "sslmode" && k != "application_name")
    {
        return Err(format!("the URL sets {k}"));
    }
    for var in [
        "PGSSLROOTCERT",
        "PGSSLCERT",
        "PGSSLKEY",
        "PGOPTIONS",
        "PGHOSTADDR",
    ] {
        if std::env::var_os(var).is_some() {
            return Err(format!("{var} is set"));
        }
    }
    let opts = PgConnectOptions::from_str(url).map_err(|e| e.to_string())?;
    if opts.get_socket().is_some() || opts.get_host().starts_with('/') {
        return Err("a Unix socket".into());
    }
    if opts.get_options().is_some() {
        return Err("startup options".into());
    }
    let ssl = match opts.get_ssl_mode() {
        PgSslMode::Disable => SslMode::Disable,
        PgSslMode::Prefer => SslMode::Prefer,
        PgSslMode::Require => SslMode::Require,
        other => return Err(format!("sslmode {other:?}")),
    };
    let password = match parsed.password() {
        Some(p) => Some(
            percent_encoding::percent_decode_str(p)
                .decode_utf8()
                .map_err(|_| "a password that is not UTF-8")?
                .into_owned(),
        ),
        None => match std::env::var("PGPASSWORD") {
            Ok(p) => Some(p),
            // sqlx would look in the passfile, which the lane does not read.
            Err(_) if passfile_exists() => return Err("a passfile".into()),
            Err(_) => None,
        },
    };
    let host = opts.get_host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok(Params {
        host: host.to_string(),
        port: opts.get_port(),
        user: opts.get_username().to_string(),
        password,
        database: opts.get_database().map(str::to_string),
        application_name: opts.get_application_name().map(str::to_string),
        ssl,
    })
}

/// Where sqlx would look for a password: `PGPASSFILE`, else `~/.pgpass` (the home directory
/// as `std::env::home_dir` finds it, as sqlx does).
fn passfile_exists() -> bool {
    std::env::var_os("PGPASSFILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::home_dir().map(|h| h.join(".pgpass")))
        .is_some_and(|p| p.exists())
}

impl Lane {
    /// Opens a lane reading snapshot `snapshot_id` (already checked to be a snapshot id by
    /// its caller) in a REPEATABLE READ, READ ONLY transaction, with the session settings
    /// sqlx and the reader give theirs. `Err` is why not; the caller reads without it.
    pub async fn open(url: &str, snapshot_id: &str) -> Result<Lane, String> {
        let p = params(url)?;
        let tls = Arc::new(AtomicBool::new(false));
        let opened = tokio::time::timeout(OPEN_TIMEOUT, Self::connect(&p, tls.clone())).await;
        let (client, task) = match opened {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(format!("no connection in {} s", OPEN_TIMEOUT.as_secs())),
        };
        let lane = Lane {
            client,
            task,
            tls: tls.load(Ordering::Relaxed),
        };
        // sqlx's startup parameters (DateStyle, TimeZone, extra_float_digits) and the
        // reader's pinned settings: a column read as text prints alike on both connections.
        // A lock the lane would wait for is given up after LOCK_TIMEOUT, and the table read
        // on the reader's own connection (see `Lane::copy_out`).
        let attached = lane
            .client
            .batch_execute(&format!(
                "SET DateStyle = 'ISO, MDY'; SET TimeZone = 'UTC'; SET extra_float_digits = 2; \
                 SET search_path = pg_catalog; SET standard_conforming_strings = on; \
                 SET idle_in_transaction_session_timeout = 0; SET lock_timeout = '{}ms'; \
                 BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
                 SET TRANSACTION SNAPSHOT '{}'",
                LOCK_TIMEOUT.as_millis(),
                snapshot_id.replace('\'', "''")
            ))
            .await;
        if let Err(e) = attached {
            lane.close().await;
            return Err(format!("attaching to the snapshot: {e}"));
        }
        Ok(lane)
    }

    async fn connect(
        p: &Params,
        tls_used: Arc<AtomicBool>,
    ) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), String> {
        let tcp = TcpStream::connect((p.host.as_str(), p.port))
            .await
            .map_err(|e| e.to_string())?;
        // Startup, TLS and auth messages go out one per write: no delayed-ACK stalls.
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let stream = BufReader::with_capacity(READ_BUFFER, tcp);
        let mut config = tokio_postgres::Config::new();
        config.user(&p.user).ssl_mode(p.ssl).host(&p.host);
        if let Some(pw) = &p.password {
            config.password(pw);
        }
        if let Some(db) = &p.database {
            config.dbname(db);
        }
        if let Some(app) = &p.application_name {
            config.application_name(app);
        }
        let tls = Tls::new(&p.host, tls_used)?;
        let (client, connection) = config
            .connect_raw(stream, tls)
            .await
            .map_err(|e| e.to_string())?;
        // The connection's I/O runs on the reader's runtime, inside its `block_on`s.
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok((client, task))
    }

    /// The transaction snapshot the lane reads, as text (`xmin:xmax:xip…`): equal to the
    /// reader's own when both read the same server's same snapshot.
    pub async fn snapshot_text(&self) -> Result<String, tokio_postgres::Error> {
        let row = self
            .client
            .query_one("SELECT txid_current_snapshot()::text", &[])
            .await?;
        row.try_get(0)
    }

    /// Ends the session cleanly (the server sees a Terminate, not a lost client).
    pub async fn close(self) {
        let Lane { client, task, .. } = self;
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    }

    /// Takes `relation`'s ACCESS SHARE lock if that needs no wait, in a savepoint the read
    /// ends ([`Lane::copied`], [`Lane::give_back`]). `Ok(false)`: it would wait, or the lane
    /// may not lock it; the lane's transaction stays usable either way. `relation` is the
    /// quoted name with `ONLY ` where the read has it.
    pub async fn lock_nowait(&self, relation: &str) -> Result<bool, tokio_postgres::Error> {
        let lock =
            format!("SAVEPOINT ferry_lane; LOCK TABLE {relation} IN ACCESS SHARE MODE NOWAIT");
        match self.client.batch_execute(&lock).await {
            Ok(()) => Ok(true),
            Err(e) if e.as_db_error().is_some() => {
                self.give_back().await?;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The CopyData messages of `sql` (a `COPY … TO STDOUT`), one per row. A database error
    /// here comes before any row (a lock not had within LOCK_TIMEOUT, say): the caller gives
    /// the savepoint back and reads the table on its own connection.
    pub async fn copy_out(
        &self,
        sql: &str,
    ) -> Result<tokio_postgres::CopyOutStream, tokio_postgres::Error> {
        self.client.copy_out(sql).await
    }

    /// The read is done: its locks stay with the transaction.
    pub async fn copied(&self) -> Result<(), tokio_postgres::Error> {
        self.client
            .batch_execute("RELEASE SAVEPOINT ferry_lane")
            .await
    }

    /// The read did not happen here: back to before the savepoint.
    pub async fn give_back(&self) -> Result<(), tokio_postgres::Error> {
        self.client
            .batch_execute("ROLLBACK TO SAVEPOINT ferry_lane; RELEASE SAVEPOINT ferry_lane")
            .await
    }
}

/// A lane error in the reader's terms: as `pg_err` classes sqlx's (temporary when the
/// connection failed or the server ran out of a resource, else a database error).
pub fn lane_err(what: &str, e: &tokio_postgres::Error) -> crate::Error {
    use crate::Error;
    match e.as_db_error() {
        Some(db) => super::reader::by_sqlstate(
            Some(db.code().code()),
            format!("{what}: {}: {}", db.severity(), db.message()),
        ),
        None if e.is_closed()
            || std::error::Error::source(e).is_some_and(|s| s.is::<io::Error>()) =>
        {
            Error::Temporary(format!(
                "{what}: connection to PostgreSQL lost ({e}); safe to re-run"
            ))
        }
        None => Error::Database(format!("{what}: {e}")),
    }
}

/// rustls for the lane: ring (the provider sqlx uses), no certificate verification (the
/// modes the lane takes verify none), P-256 offered first (PostgreSQL's default
/// `ssl_ecdh_curve`, so no HelloRetryRequest round trip).
struct Tls {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    /// Set once the handshake is done.
    used: Arc<AtomicBool>,
}

impl Tls {
    fn new(host: &str, used: Arc<AtomicBool>) -> Result<Tls, String> {
        let mut provider = rustls::crypto::ring::default_provider();
        provider
            .kx_groups
            .sort_by_key(|g| g.name() != rustls::NamedGroup::secp256r1);
        let provider = Arc::new(provider);
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        Ok(Tls {
            config: Arc::new(config),
            name,
            used,
        })
    }
}

impl<S> TlsConnect<S> for Tls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let s = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            self.used.store(true, Ordering::Relaxed);
            Ok(TlsStream(s))
        })
    }
}

/// The TLS stream tokio-postgres reads and writes.
pub struct TlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM without channel binding, as sqlx authenticates.
        ChannelBinding::none()
    }
}

/// Accepts any certificate, checks the handshake's signatures: sqlx's `prefer` and
/// `require`.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lane_takes_only_urls_it_connects_to_as_sqlx_does() {
        let ok = |u: &str| params(u).map(|p| (p.host, p.port, p.user, p.password, p.ssl));
        assert_eq!(
            ok("postgres://ann:p%40ss@db.example:6543/app?sslmode=require").unwrap(),
            (
                "db.example".into(),
                6543,
                "ann".into(),
                Some("p@ss".into()),
                SslMode::Require
            )
        );
        assert_eq!(ok("postgres://u:p@[::1]/d").unwrap().0, "::1");
        for refused in [
            "postgres://u:p@h/d?sslmode=verify-full",
            "postgres://u:p@h/d?sslmode=verify-ca",
            "postgres://u:p@h/d?sslmode=allow",
            "postgres://u:p@h/d?sslrootcert=/r.pem",
            "postgres://u:p@h/d?sslcert=/c.pem&sslkey=/k.pem",
            "postgres://u:p@h/d?options=-c%20TimeZone%3DX",
            "postgres://u:p@h/d?host=/var/run/postgresql",
            "postgres://u:p@%2Fvar%2Frun%2Fpostgresql/d",
        ] {
            assert!(params(refused).is_err(), "{refused}");
        }
    }
}
