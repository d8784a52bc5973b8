//! What a run tells the operator: progress on stderr while it works (bars on a terminal,
//! one quiet line per table otherwise) and a closing summary with the three numbers of
//! docs/RELIABILITY.md ("Design notes"): data volume, speed and error rate; `--json` prints the summary as JSON.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// One table's line in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub table: String,
    /// Rows the command moved (import: rows this run wrote; an upsert's inserted and
    /// updated rows together).
    pub rows: u64,
    /// Bytes as stored in the bundle (compressed, encrypted).
    pub bytes: u64,
    /// Import: the Arrow (uncompressed, in-memory) size of the rows read from the bundle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logical_bytes: Option<u64>,
    pub parts: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
    /// Import with `--on-error skip`: rows of this run's parts the target refused.
    pub rows_rejected: u64,
    /// `rows_rejected` over the rows this run read of the table (`rows + rows_rejected`).
    pub error_rate: f64,
    /// Import with `--on-error skip`: rows the target refused in a part that then rolled
    /// back (the part that went over `--max-errors`, or failed otherwise). Neither loaded
    /// nor set aside, so not in the ledger nor in E; a re-run meets them again.
    #[serde(skip_serializing_if = "is_zero")]
    pub rows_rejected_rolled_back: u64,
    /// Upsert: rows inserted (a new key) and updated (a key the table had, whether a
    /// value changed or not), apart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inserted: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<u64>,
    /// Import: connections this table's parts loaded over at once (`--streams`); absent
    /// when one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streams: Option<u64>,
    /// `exported`, `loaded`, `skipped (already imported)`, `verified`, `equal`, `different`, `failed`.
    pub status: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub rows: u64,
    /// Bytes as stored in the bundle (compressed, encrypted): the data volume D.
    pub bytes: u64,
    /// Import: the Arrow (uncompressed) size of the rows read, where the tables give it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logical_bytes: Option<u64>,
    pub seconds: f64,
    pub rows_per_s: f64,
    /// `bytes` per second, in MB (10^6 bytes).
    pub mb_per_s: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Errors {
    /// Rows the target refused (`import --on-error skip`), in all.
    pub rows_rejected: u64,
    /// The rows the error rate is over: every row this run read (written or rejected).
    pub rows_total: u64,
    /// Parts that failed (their transaction rolled back), apart from the rows.
    pub parts_failed: u64,
    pub parts_total: u64,
    /// E = rows_rejected / rows_total: rows only (failed parts are counted apart).
    pub error_rate: f64,
    /// Rows refused in parts that rolled back, in all (see
    /// [`TableReport::rows_rejected_rolled_back`]).
    #[serde(skip_serializing_if = "is_zero")]
    pub rows_rejected_rolled_back: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The closing summary of a command (schema: `schemas/report.v1.json`).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub command: String,
    /// `ok`, `nothing to do`, `failed`, `different`.
    pub status: String,
    pub exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_id: Option<String>,
    /// Commands that read or write a bundle: whether it is encrypted (`--no-encrypt` bundles
    /// are not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    /// Whether the manifest MAC was checked with a key (export: whether the bundle carries
    /// one). Always false for a plain bundle and for a keyless `verify`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authenticated: Option<bool>,
    /// The minisign key id of the manifest's signer (`null`: unsigned). Verified when
    /// `signature_checked`; otherwise only what the signature file claims.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// Whether the signature was checked against a trust list (`--trust`, `--trust-file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_checked: Option<bool>,
    /// The fingerprint of manifest.json (docs/FORMAT.md, "Fingerprint"), to compare over a
    /// phone: export, verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// `import`: the target's bulk path and why it was chosen (MySQL/MariaDB: LOAD DATA
    /// LOCAL INFILE or batched INSERTs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_path: Option<String>,
    pub tables: Vec<TableReport>,
    pub totals: Totals,
    pub errors: Errors,
    pub warnings: Vec<String>,
    /// One sentence for a person: what happened and, on failure, what state the target is in.
    pub message: String,
    /// A failed command: what to do next (the `hint:` line of stderr).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<crate::error::Finding>,
    /// `plan` and `export --dry-run`: what each table and column would become (schema:
    /// `schemas/plan.v1.json`), and its text, printed instead of the table of figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<serde_json::Value>,
    #[serde(skip)]
    pub plan_text: String,
    /// `compare`: what differs, per table that differs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<TableDifference>,
    /// `gc`: the leftovers found (and removed), the objects left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc: Option<serde_json::Value>,
}

/// How one table differs between the two sides of a `compare` (A and B, in argument order).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableDifference {
    pub table: String,
    /// `A` or `B`: the side that has no such table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_in: Option<String>,
    pub rows_a: u64,
    pub rows_b: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns_only_in_a: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns_only_in_b: Vec<String>,
    /// Columns whose values differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Up to `--show N` keys that differ, in key order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyDifference>,
    /// Keys found to differ (all of them when `keys_complete`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys_total: Option<u64>,
    /// Whether every row that differs was examined (else only some buckets of keys were).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys_complete: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One key whose row differs.
#[derive(Debug, Clone, Serialize)]
pub struct KeyDifference {
    /// `id=42`, `(a=1, b="x")`.
    pub key: String,
    /// `missing in A`, `missing in B`, `changed`, or `N rows in A, M in B`.
    pub difference: String,
    /// For `changed`: the columns whose values differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

impl RunReport {
    pub fn new(command: &str) -> Self {
        RunReport {
            command: command.into(),
            status: "ok".into(),
            exit_code: 0,
            bundle: None,
            bundle_id: None,
            encrypted: None,
            authenticated: None,
            signed_by: None,
            signature_checked: None,
            fingerprint: None,
            load_path: None,
            tables: vec![],
            totals: Totals::default(),
            errors: Errors::default(),
            warnings: vec![],
            message: String::new(),
            hint: None,
            findings: vec![],
            plan: None,
            plan_text: String::new(),
            differences: vec![],
            gc: None,
        }
    }

    /// Adds a table's line; the caller may fill in the rest of it (rejected rows, upsert
    /// counts, logical bytes) through the reference returned.
    pub fn add_table(
        &mut self,
        table: &str,
        rows: u64,
        bytes: u64,
        parts: u64,
        elapsed: Duration,
        status: &str,
    ) -> &mut TableReport {
        let seconds = elapsed.as_secs_f64();
        self.tables.push(TableReport {
            table: table.into(),
            rows,
            bytes,
            logical_bytes: None,
            parts,
            seconds,
            rows_per_s: rate(rows as f64, seconds),
            rows_rejected: 0,
            error_rate: 0.0,
            rows_rejected_rolled_back: 0,
            inserted: None,
            updated: None,
            streams: None,
            status: status.into(),
        });
        self.tables.last_mut().expect("just pushed")
    }

    /// Whether this run moved no data (a dry run, an import with nothing to do, `status`):
    /// its summary then gives no speed.
    fn moved_nothing(&self) -> bool {
        matches!(
            self.status.as_str(),
            "dry run" | "nothing to do" | "status" | "coordinated"
        ) || matches!(self.command.as_str(), "status" | "plan" | "gc")
    }

    /// Records what the bundle proves: `encrypted`, and `authenticated` (MAC checked with a key).
    pub fn set_trust(&mut self, encrypted: bool, authenticated: bool) {
        self.encrypted = Some(encrypted);
        self.authenticated = Some(authenticated);
    }

    /// Records what a bundle a reader opened proves ([`trust_of`]), with its warning.
    pub fn set_trust_opened(
        &mut self,
        encrypted: bool,
        opened_by: Option<crate::crypto::envelope::Opener>,
        signature_checked: bool,
    ) {
        let (authenticated, warning) = trust_of(encrypted, opened_by, signature_checked);
        self.set_trust(encrypted, authenticated);
        self.warnings.extend(warning.map(String::from));
    }

    /// Records the manifest's signature (`signed_by`, `signature_checked`) and its
    /// fingerprint, and warns of a signature file that was not understood.
    pub fn set_signature(
        &mut self,
        sig: &crate::crypto::signing::SignatureCheck,
        fingerprint: String,
    ) {
        self.signed_by = sig.signed_by.clone();
        self.signature_checked = Some(sig.checked);
        self.fingerprint = Some(fingerprint);
        if let Some(n) = &sig.note {
            self.warnings.push(n.clone());
        }
    }

    /// Fills the totals from the tables and the run's wall time, and the error rate E from
    /// the rejected rows: per table and in all, over the rows read (written + rejected).
    pub fn close(&mut self, elapsed: Duration) {
        for t in &mut self.tables {
            t.error_rate = ratio(t.rows_rejected, t.rows + t.rows_rejected);
        }
        let rows: u64 = self.tables.iter().map(|t| t.rows).sum();
        let bytes: u64 = self.tables.iter().map(|t| t.bytes).sum();
        let logical = self
            .tables
            .iter()
            .map(|t| t.logical_bytes)
            .try_fold(0u64, |a, b| b.map(|b| a + b))
            .filter(|_| !self.tables.is_empty());
        let seconds = elapsed.as_secs_f64();
        let moved = !self.moved_nothing();
        self.totals = Totals {
            rows,
            bytes,
            logical_bytes: logical,
            seconds,
            rows_per_s: if moved {
                rate(rows as f64, seconds)
            } else {
                0.0
            },
            mb_per_s: if moved {
                rate(bytes as f64 / 1e6, seconds)
            } else {
                0.0
            },
        };
        let rejected: u64 = self.tables.iter().map(|t| t.rows_rejected).sum();
        self.errors.rows_rejected = rejected;
        self.errors.rows_total = rows + rejected;
        self.errors.error_rate = ratio(rejected, rows + rejected);
        self.errors.rows_rejected_rolled_back = self
            .tables
            .iter()
            .map(|t| t.rows_rejected_rolled_back)
            .sum();
    }

    /// Sets the run's total bytes where no table carries them (a keyless verify reads every
    /// stored byte), with the speed they make.
    pub fn set_bytes(&mut self, bytes: u64) {
        self.totals.bytes = bytes;
        self.totals.mb_per_s = rate(bytes as f64 / 1e6, self.totals.seconds);
    }

    /// The human summary table.
    pub fn render(&self) -> String {
        let mut out = printable_lines(&self.plan_text);
        if self.plan.is_none() && !self.tables.is_empty() {
            let w = self
                .tables
                .iter()
                .map(|t| t.table.chars().count())
                .max()
                .unwrap_or(5)
                .clamp(5, 60);
            // The rejected column only where rows were rejected.
            let rejects = self.tables.iter().any(|t| t.rows_rejected > 0);
            out.push_str(&format!(
                "{:<w$}  {:>12}  {:>10}  {:>5}  {:>8}  {:>12}  {}{}\n",
                "table",
                "rows",
                "bytes",
                "parts",
                "seconds",
                "rows/s",
                if rejects {
                    format!("{:>9}  {:>6}  ", "rejected", "E")
                } else {
                    String::new()
                },
                "status"
            ));
            for t in &self.tables {
                let mut status = printable(&t.status).into_owned();
                if let (Some(i), Some(u)) = (t.inserted, t.updated) {
                    status.push_str(&format!(" ({i} inserted, {u} updated)"));
                }
                out.push_str(&format!(
                    "{:<w$}  {:>12}  {:>10}  {:>5}  {:>8.2}  {:>12.0}  {}{}\n",
                    printable(&t.table),
                    t.rows,
                    human_size(t.bytes),
                    t.parts,
                    t.seconds,
                    t.rows_per_s,
                    if rejects {
                        format!("{:>9}  {:>6.4}  ", t.rows_rejected, t.error_rate)
                    } else {
                        String::new()
                    },
                    status
                ));
            }
        }
        let t = &self.totals;
        // A dry run moves nothing: its rows are estimates, with no speed or error rate.
        if self.status == "dry run" {
            out.push_str(&format!(
                "{}: dry run — {}, nothing moved\n",
                self.command,
                rows_word(t.rows)
            ));
        }
        if self.status == "nothing to do" {
            out.push_str(&format!(
                "{}: nothing to do — the target already holds {} of it{}\n",
                self.command,
                rows_word(t.rows),
                if self.errors.rows_rejected > 0 {
                    format!(
                        " ({} rejected when it was loaded, E = {:.4})",
                        rows_word(self.errors.rows_rejected),
                        self.errors.error_rate
                    )
                } else {
                    String::new()
                }
            ));
        }
        // A verify without a key reads no rows: it checked files, sizes and hashes only.
        let keyless_verify = self.command == "verify" && self.tables.is_empty();
        if keyless_verify && self.status == "ok" {
            out.push_str(&format!(
                "verify: ok — {} and the catalog, {} checked (sizes and SHA-256; rows are read \
                 only with a key)\n",
                count(self.errors.parts_total, "part", "parts"),
                human_size(t.bytes)
            ));
        }
        // `status` reads a ledger: it moves nothing, so it has no speed or error rate.
        if !matches!(self.command.as_str(), "status" | "plan" | "gc")
            && !self.moved_nothing()
            && !keyless_verify
        {
            let logical = t
                .logical_bytes
                .filter(|l| *l > 0)
                .map(|l| format!(" ({} uncompressed)", human_size(l)))
                .unwrap_or_default();
            // A compare loads nothing: it has no rejected rows or failed parts to count.
            let errors = if self.command == "compare" {
                String::new()
            } else {
                format!(
                    "; errors: {} of {} rejected (E = {:.4}){}, {} of {} failed",
                    self.errors.rows_rejected,
                    rows_word(self.errors.rows_total),
                    self.errors.error_rate,
                    match self.errors.rows_rejected_rolled_back {
                        0 => String::new(),
                        n => format!(
                            " and {} refused in a part that rolled back (not loaded, not set aside)",
                            rows_word(n)
                        ),
                    },
                    self.errors.parts_failed,
                    count(self.errors.parts_total, "part", "parts"),
                )
            };
            // `seal` writes a manifest over parts the shards wrote: their rows and bytes, but
            // no speed of its own (the shards' summaries have theirs).
            let speed = if self.command == "seal" {
                format!(" (written by the shards; sealed in {:.2} s)", t.seconds)
            } else {
                format!(
                    " in {:.2} s ({:.0} rows/s, {:.1} MB/s)",
                    t.seconds, t.rows_per_s, t.mb_per_s
                )
            };
            out.push_str(&format!(
                "{}: {} — {}, {}{logical}{speed}{errors}\n",
                self.command,
                self.status,
                rows_word(t.rows),
                human_size(t.bytes),
            ));
        }
        if let (Some(enc), Some(auth)) = (self.encrypted, self.authenticated) {
            out.push_str(&format!(
                "bundle: {}\n",
                trust_line(enc, auth, self.signed_by.as_deref(), self.signature_checked)
            ));
        }
        if let Some(f) = &self.fingerprint {
            out.push_str(&format!("fingerprint: {f} (of manifest.json)\n"));
        }
        if let Some(p) = &self.load_path {
            out.push_str(&format!("load path: {}\n", printable_lines(p)));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {}\n", printable_lines(w)));
        }
        if !self.message.is_empty() {
            out.push_str(&printable_lines(&self.message));
            out.push('\n');
        }
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises")
    }
}

/// Whether a bundle a reader opened is authenticated, and the warning when an age slot is
/// all that opened it. `opened_by`: the kind of slot that opened it (`None`: not opened,
/// checked without a key). A MAC under a key file or a passphrase authenticates the sender,
/// who had to hold that secret; under an age slot it does not (the recipient is public, so
/// anyone can make such a bundle). A trusted signature (`signature_checked`) covers the
/// manifest and so every file's SHA-256: it authenticates the bundle with or without a key.
/// Decided by the slot that opened, never by the key options given.
pub fn trust_of(
    encrypted: bool,
    opened_by: Option<crate::crypto::envelope::Opener>,
    signature_checked: bool,
) -> (bool, Option<&'static str>) {
    let by_age = opened_by == Some(crate::crypto::envelope::Opener::Age);
    let authenticated = encrypted && (signature_checked || (opened_by.is_some() && !by_age));
    let warning = (encrypted && by_age && !signature_checked)
        .then_some(crate::crypto::keys::Keys::AGE_ONLY_WARNING);
    (authenticated, warning)
}

/// One line on what a bundle proves, for the text summaries of every command.
///
/// `signature_checked`: `Some(true)` when `signed_by` was verified with a `--trust`ed key,
/// `Some(false)` when it is only what the signature file claims, `None` when the command
/// signed the bundle itself (export).
pub fn trust_line(
    encrypted: bool,
    authenticated: bool,
    signed_by: Option<&str>,
    signature_checked: Option<bool>,
) -> String {
    let mut s = match (encrypted, authenticated) {
        (true, true) => match signature_checked {
            Some(true) => "encrypted, authenticated (by its signature)",
            Some(false) => "encrypted, authenticated (the manifest MAC checked with the key)",
            // export: what its readers can check
            None => "encrypted, authenticated (its readers check the manifest MAC with the key, or its signature)",
        }
        .to_string(),
        (true, false) => "encrypted, NOT authenticated (neither a key file or passphrase nor a trusted signature checked it; an age recipient is public, so an age slot proves nothing about the sender)".to_string(),
        (false, _) => "NOT encrypted, NOT authenticated (no MAC: anyone who could write the bundle could have made it)"
            .to_string(),
    };
    match (signed_by, signature_checked) {
        (Some(k), Some(true)) => s.push_str(&format!(
            "; signed by key id {} (a trusted key: signature verified)",
            printable(k)
        )),
        (Some(k), Some(false)) => s.push_str(&format!(
            "; signed by key id {} (NOT checked: give --trust to verify it)",
            printable(k)
        )),
        (Some(k), None) => s.push_str(&format!("; signed by key id {}", printable(k))),
        (None, _) => s.push_str("; not signed"),
    }
    s
}

/// A string taken from a bundle (or any other outside source), safe to print on a
/// terminal: control characters (ESC and the C1 range, so no terminal escape sequence; also
/// CR, LF and TAB, so no forged line) and bidirectional overrides are shown escaped, as
/// `\u{1b}`; everything else is kept.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let bad =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            o.extend(c.escape_default());
        } else {
            o.push(c);
        }
    }
    std::borrow::Cow::Owned(o)
}

/// [`printable`] line by line, for multi-line text of ferry's own that embeds bundle strings.
pub fn printable_lines(s: &str) -> String {
    s.split('\n').map(printable).collect::<Vec<_>>().join("\n")
}

/// `n` and the noun for it: `1 part`, `0 parts`, `3 parts`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `1 row`, `2 rows`, `0 rows`.
pub fn rows_word(n: u64) -> String {
    count(n, "row", "rows")
}

fn rate(n: f64, seconds: f64) -> f64 {
    if seconds > 0.0 { n / seconds } else { 0.0 }
}

/// `part / whole`, 0 when there is nothing to divide.
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A byte count in decimal units (kB, MB, GB: powers of 1000), the family of the summary's
/// MB/s, so sizes and speeds in a summary read together.
pub fn human_size(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A byte count in binary units (KiB, MiB, GiB), for limits that are powers of two
/// (a row's or a row group's most); summaries use [`human_size`].
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Progress on stderr: bars when stderr is a terminal, a line per finished step otherwise,
/// nothing when quiet.
#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
    quiet: bool,
    started: Instant,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let multi = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress {
            multi,
            quiet,
            started: Instant::now(),
        }
    }

    pub fn hidden() -> Self {
        Progress {
            multi: None,
            quiet: true,
            started: Instant::now(),
        }
    }

    /// A bar counting `unit` ("rows", "bytes") toward `total` when known.
    pub fn bar(&self, label: &str, total: Option<u64>, bytes: bool) -> ProgressBar {
        let Some(m) = &self.multi else {
            return ProgressBar::hidden();
        };
        // Made hidden and only then added, so it never draws outside the MultiProgress.
        let pb = ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden());
        if total.is_none() {
            pb.enable_steady_tick(std::time::Duration::from_millis(200));
        }
        let tmpl = match (total.is_some(), bytes) {
            (true, true) => {
                "{prefix:<24!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
            }
            (true, false) => {
                "{prefix:<24!} [{bar:30}] {human_pos}/{human_len} rows {msg}, {elapsed} elapsed, eta {eta}"
            }
            (false, true) => "{prefix:<24!} {spinner} {bytes} {bytes_per_sec}",
            (false, false) => "{prefix:<24!} {spinner} {human_pos} rows {msg}, {elapsed} elapsed",
        };
        pb.set_style(
            ProgressStyle::with_template(tmpl)
                .expect("valid template")
                .progress_chars("=> "),
        );
        // Labels name tables, and a bundle chooses its table names.
        pb.set_prefix(printable(label).into_owned());
        m.add(pb)
    }

    /// A line for logs when there are no bars.
    /// One line of progress; text from a bundle in it (a table name) is made printable.
    pub fn line(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(printable_lines(msg));
            }
            None => {
                use std::io::Write as _;
                // A closed stderr drops the line (never a panic).
                let _ = writeln!(
                    std::io::stderr(),
                    "[{:>7.1}s] {}",
                    self.started.elapsed().as_secs_f64(),
                    printable_lines(msg)
                );
            }
        }
    }
}
