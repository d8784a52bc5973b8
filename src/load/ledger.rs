//! The ledger: one row per loaded part, written in the part's own transaction, so a part's
//! rows and the record that they were loaded commit together or not at all. Its table and
//! every statement on it are written here, once, in each engine's dialect.

use super::session::{Dialect, LedgerKind, Param, Session};
use crate::Result;

/// The ledger's table name (schema-qualified by engines that have schemas).
pub const LEDGER: &str = "_ferry_ledger";

/// Ledger mode of a part loaded into a replace's staging table.
pub const STAGED: &str = "replace-staged";
/// Ledger mode of a replace's parts once the publish transaction committed.
pub const PUBLISHED: &str = "published";
/// Ledger mode of the row that records a bundle as a link of a chain. Its key is the
/// chain's place, not the bundle: `bundle_id` holds the chain id and `part_path`
/// `chain/<sequence>`, so two bundles can never both take one place (a fork loses on the
/// key, even when both import at once); `target_table` holds the bundle id, `rows` the
/// bundle's part count. Written with the bundle's first committed part.
pub const CHAIN_LINK: &str = "chain-link";
pub const CHAIN_PREFIX: &str = "chain/";

/// The ledger's columns, in table order. Key: (bundle_id, part_path). After them comes
/// [`REJECTED`], which ledgers made before it get from [`upgrade`].
pub const COLUMNS: [(&str, LedgerKind); 12] = [
    ("bundle_id", LedgerKind::Fixed(32)),
    ("part_path", LedgerKind::Ascii(80)),
    ("manifest_sha256", LedgerKind::Fixed(64)),
    ("cipher_sha256", LedgerKind::Fixed(64)),
    ("source_id", LedgerKind::Ascii(200)),
    ("sequence", LedgerKind::BigInt),
    ("target_table", LedgerKind::Unicode(512)),
    ("rows_loaded", LedgerKind::BigInt),
    ("mode", LedgerKind::Ascii(16)),
    ("run_id", LedgerKind::Fixed(32)),
    ("tool_version", LedgerKind::Ascii(32)),
    ("loaded_at", LedgerKind::Now),
];

/// The ledger's last column: rows of the part the target refused and `--on-error skip` set
/// aside (0 otherwise), so a re-run neither loads nor counts them twice. Added after the
/// first release: [`upgrade`] adds it to a ledger that lacks it (`DEFAULT 0`, so older
/// ferry versions, which do not name it, still write their rows).
pub const REJECTED: &str = "rows_rejected";

/// The ledger row written in the same transaction as a part's rows.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    pub bundle_id: String,
    pub part_path: String,
    pub manifest_sha256: String,
    pub cipher_sha256: String,
    pub source_id: String,
    pub sequence: u64,
    pub target_table: String,
    pub rows: u64,
    pub mode: String,
    pub run_id: String,
    /// A link of a chain: the chain-link row claimed with the part (same transaction).
    pub link: Option<ChainLink>,
}

/// What a chain-link ledger row records.
#[derive(Debug, Clone)]
pub struct ChainLink {
    pub chain_id: String,
    /// The predecessor's manifest hash (64 zeros for the first link).
    pub prev_manifest_sha256: String,
    /// Parts of the bundle: the link is applied when the ledger holds all of them.
    pub parts: u64,
}

impl LedgerEntry {
    /// The chain-link row of this entry's bundle, if it is a link.
    pub fn link_row(&self) -> Option<LedgerEntry> {
        let l = self.link.as_ref()?;
        Some(LedgerEntry {
            bundle_id: l.chain_id.clone(),
            part_path: format!("{CHAIN_PREFIX}{}", self.sequence),
            cipher_sha256: l.prev_manifest_sha256.clone(),
            target_table: self.bundle_id.clone(),
            rows: l.parts,
            mode: CHAIN_LINK.into(),
            link: None,
            ..self.clone()
        })
    }
}

/// One link of a chain as this target's ledger recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedLink {
    pub sequence: u64,
    pub bundle_id: String,
    pub manifest_sha256: String,
    pub prev_manifest_sha256: String,
    /// Parts of the bundle, and how many of them the ledger holds (published, for replace).
    pub parts: u64,
    pub parts_in: u64,
    pub loaded_at: String,
}

impl AppliedLink {
    pub fn complete(&self) -> bool {
        self.parts_in >= self.parts
    }
}

/// What the ledger knows of one bundle at this target.
#[derive(Debug, Clone, Default)]
pub struct LedgerState {
    /// Parts already committed, with the table they went to.
    pub parts: Vec<(String, String)>,
    /// Manifest hashes recorded under this bundle id (more than one means tampering or reuse).
    pub manifest_sha256: Vec<String>,
    /// When the first part was loaded, for "already imported" messages.
    pub first_loaded_at: Option<String>,
    /// Parts loaded into a replace's staging table and not yet published (ledger mode
    /// `replace-staged`): a re-run reuses the staging table and publishes.
    pub staged: Vec<String>,
    /// Each committed part's (rows loaded, rows rejected), by part path.
    pub counts: std::collections::HashMap<String, (u64, u64)>,
}

impl LedgerState {
    /// Adds one ledger row of the bundle (rows in load order).
    pub fn record(
        &mut self,
        part: String,
        table: String,
        manifest_sha256: String,
        loaded_at: String,
        mode: &str,
    ) {
        if mode == CHAIN_LINK {
            return;
        }
        if mode == STAGED {
            self.staged.push(part.clone());
        }
        self.parts.push((part, table));
        if !self.manifest_sha256.contains(&manifest_sha256) {
            self.manifest_sha256.push(manifest_sha256);
        }
        self.first_loaded_at.get_or_insert(loaded_at);
    }
}

/// `CREATE TABLE IF NOT EXISTS` of the ledger, in this dialect.
pub fn create_sql(d: &Dialect, ledger: &str) -> String {
    let mut cols: Vec<String> = COLUMNS
        .iter()
        .map(|(name, kind)| format!("{name} {} NOT NULL", (d.ledger_type)(*kind)))
        .collect();
    cols.push(rejected_ddl(d));
    format!(
        "CREATE TABLE IF NOT EXISTS {ledger} (\n  {},\n  PRIMARY KEY (bundle_id, part_path)\n){}",
        cols.join(",\n  "),
        d.ledger_options
    )
}

/// The definition of [`REJECTED`], in `CREATE TABLE` and in `ALTER TABLE … ADD COLUMN`.
fn rejected_ddl(d: &Dialect) -> String {
    format!(
        "{REJECTED} {} NOT NULL DEFAULT 0",
        (d.ledger_type)(LedgerKind::BigInt)
    )
}

/// Whether the ledger has the [`REJECTED`] column (outside a transaction: the probe's
/// error, when it lacks it, would abort one).
pub fn has_rejected(s: &mut dyn Session) -> bool {
    let sql = format!(
        "SELECT {} FROM {} WHERE 1 = 0",
        (s.dialect().as_text)(REJECTED),
        s.ledger_table()
    );
    s.query_text("reading the ledger's columns", &sql, &[])
        .is_ok()
}

/// Brings a ledger made by an older ferry up to this one's columns: adds [`REJECTED`]
/// when it is missing (once per target; outside any transaction). Nothing when there is no
/// ledger yet (it will be made with every column). Two imports upgrading at once: the one
/// that loses finds the column there.
pub fn upgrade(s: &mut dyn Session) -> Result<()> {
    if !s.ledger_exists()? || has_rejected(s) {
        return Ok(());
    }
    let sql = format!(
        "ALTER TABLE {} ADD COLUMN {}",
        s.ledger_table(),
        rejected_ddl(s.dialect())
    );
    match s.execute("adding the ledger's rows_rejected column", &sql, &[]) {
        Ok(_) => Ok(()),
        Err(_) if has_rejected(s) => Ok(()),
        Err(e) => Err(e),
    }
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn first(row: &[Option<String>], i: usize) -> String {
    row.get(i)
        .cloned()
        .flatten()
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

/// Claims a part: inserts its ledger row (rows 0) unless the key is taken. `false` when
/// another run committed the part already; a concurrent loader of the same part waits
/// here on the key until this transaction ends.
pub fn claim(s: &mut dyn Session, e: &LedgerEntry) -> Result<bool> {
    let d = s.dialect();
    let names: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
    let (insert, suffix) = d.insert_ignoring_conflict;
    let (names, values) = match d.now {
        Some(now) => (names.join(", "), format!("{}, {now}", d.phs(1, 11))),
        None => (names[..11].join(", "), d.phs(1, 11)),
    };
    let sql = format!(
        "{insert} {} ({names}) VALUES ({values}){suffix}",
        s.ledger_table()
    );
    let n = s.execute(
        "writing the ledger",
        &sql,
        &[
            Param::Text(&e.bundle_id),
            Param::Text(&e.part_path),
            Param::Text(&e.manifest_sha256),
            Param::Text(&e.cipher_sha256),
            Param::Text(&e.source_id),
            Param::Int(int(e.sequence)),
            Param::Text(&e.target_table),
            Param::Int(0),
            Param::Text(&e.mode),
            Param::Text(&e.run_id),
            Param::Text(crate::TOOL_VERSION),
        ],
    )?;
    Ok(n > 0)
}

/// Claims a part and, for a link of a chain, its chain-link row (ignored when an earlier
/// part of the bundle wrote it). `false` when the part was committed already.
pub fn claim_with_link(s: &mut dyn Session, e: &LedgerEntry) -> Result<bool> {
    if !claim(s, e)? {
        return Ok(false);
    }
    if let Some(mut l) = e.link_row() {
        if claim(s, &l)? {
            l.rows = e.link.as_ref().map_or(0, |c| c.parts);
            set_rows(s, &l, l.rows, 0)?;
        } else {
            // The place is taken: by this bundle (an earlier part), or by another (a fork
            // that committed first; a concurrent one waited on the key until it did).
            let d = s.dialect();
            let sql = format!(
                "SELECT {} FROM {} WHERE bundle_id = {} AND part_path = {}",
                (d.as_text)("target_table"),
                s.ledger_table(),
                d.ph(1),
                d.ph(2)
            );
            let rows = s.query_text(
                "reading the ledger's chains",
                &sql,
                &[Param::Text(&l.bundle_id), Param::Text(&l.part_path)],
            )?;
            let holder = rows.first().map(|r| first(r, 0)).unwrap_or_default();
            if holder != e.bundle_id {
                return Err(crate::Error::Chain(format!(
                    "chain {}: link {} here is bundle {holder}, and bundle {} claims the same place: a fork \
                     (two exports --since the same bundle, imported at once). Nothing of it was written",
                    l.bundle_id, e.sequence, e.bundle_id
                )));
            }
        }
    }
    Ok(true)
}

/// Every link of `chain_id` this target's ledger records, by sequence, each with how
/// many of its parts are in (a link is applied when all are, none waiting in staging).
pub fn chain_links(s: &mut dyn Session, chain_id: &str) -> Result<Vec<AppliedLink>> {
    if !s.ledger_exists()? {
        return Ok(vec![]);
    }
    let d = s.dialect();
    let t = d.as_text;
    let ledger = s.ledger_table();
    let count = format!(
        "(SELECT COUNT(*) FROM {ledger} p WHERE p.bundle_id = c.target_table AND p.mode <> {} AND p.mode <> {})",
        d.ph(1),
        d.ph(2)
    );
    let sql = format!(
        "SELECT {}, {}, {}, {}, {}, {}, {} FROM {ledger} c WHERE c.bundle_id = {} AND c.mode = {} \
         ORDER BY c.sequence",
        t("c.sequence"),
        t("c.target_table"),
        t("c.manifest_sha256"),
        t("c.cipher_sha256"),
        t("c.rows_loaded"),
        t("c.loaded_at"),
        t(&count),
        d.ph(3),
        d.ph(4),
    );
    let rows = s.query_text(
        "reading the ledger's chains",
        &sql,
        &[
            Param::Text(STAGED),
            Param::Text(CHAIN_LINK),
            Param::Text(chain_id),
            Param::Text(CHAIN_LINK),
        ],
    )?;
    Ok(rows
        .iter()
        .map(|r| AppliedLink {
            sequence: first(r, 0).parse().unwrap_or(0),
            bundle_id: first(r, 1),
            manifest_sha256: first(r, 2),
            prev_manifest_sha256: first(r, 3),
            parts: first(r, 4).parse().unwrap_or(0),
            loaded_at: first(r, 5),
            parts_in: first(r, 6).parse().unwrap_or(0),
        })
        .collect())
}

/// Every ledger row, for `ferry status`: (bundle id, part path, source id, sequence,
/// target table, rows, mode, loaded at, manifest hash, rows rejected), oldest first.
pub fn all_rows(s: &mut dyn Session) -> Result<Vec<Vec<String>>> {
    if !s.ledger_exists()? {
        return Ok(vec![]);
    }
    // A ledger of an older ferry has no rejected rows to tell (status does not upgrade it).
    let rejected = if has_rejected(s) { REJECTED } else { "0" };
    let d = s.dialect();
    let t = d.as_text;
    let sql = format!(
        "SELECT {}, {}, {}, {}, {}, {}, {}, {}, {}, {} FROM {} ORDER BY loaded_at, bundle_id, part_path",
        t("bundle_id"),
        t("part_path"),
        t("source_id"),
        t("sequence"),
        t("target_table"),
        t("rows_loaded"),
        t("mode"),
        t("loaded_at"),
        t("manifest_sha256"),
        t(rejected),
        s.ledger_table()
    );
    let rows = s.query_text("reading the ledger", &sql, &[])?;
    Ok(rows
        .iter()
        .map(|r| (0..10).map(|i| first(r, i)).collect())
        .collect())
}

/// Records how many rows a claimed part loaded, and how many the target refused under
/// `--on-error skip` (same transaction; [`upgrade`] gave an older ledger the column before
/// any part).
pub fn set_rows(s: &mut dyn Session, e: &LedgerEntry, rows: u64, rejected: u64) -> Result<()> {
    let d = s.dialect();
    let sql = format!(
        "UPDATE {} SET rows_loaded = {}, {REJECTED} = {} WHERE bundle_id = {} AND part_path = {}",
        s.ledger_table(),
        d.ph(1),
        d.ph(2),
        d.ph(3),
        d.ph(4)
    );
    s.execute(
        "writing the ledger",
        &sql,
        &[
            Param::Int(int(rows)),
            Param::Int(int(rejected)),
            Param::Text(&e.bundle_id),
            Param::Text(&e.part_path),
        ],
    )
    .map(|_| ())
}

/// The ledger's record of a bundle (empty when no ledger exists yet).
pub fn state(s: &mut dyn Session, bundle_id: &str) -> Result<LedgerState> {
    if !s.ledger_exists()? {
        return Ok(LedgerState::default());
    }
    let rejected = if has_rejected(s) { REJECTED } else { "0" };
    let d = s.dialect();
    let t = d.as_text;
    let sql = format!(
        "SELECT {}, {}, {}, {}, {}, {}, {} FROM {} WHERE bundle_id = {} ORDER BY loaded_at, part_path",
        t("part_path"),
        t("target_table"),
        t("manifest_sha256"),
        t("loaded_at"),
        t("mode"),
        t("rows_loaded"),
        t(rejected),
        s.ledger_table(),
        d.ph(1)
    );
    let rows = s.query_text("reading the ledger", &sql, &[Param::Text(bundle_id)])?;
    let mut state = LedgerState::default();
    for r in rows {
        let mode = first(&r, 4);
        if mode != CHAIN_LINK {
            let n = |i| first(&r, i).parse::<u64>().unwrap_or(0);
            state.counts.insert(first(&r, 0), (n(5), n(6)));
        }
        state.record(
            first(&r, 0),
            first(&r, 1),
            first(&r, 2),
            first(&r, 3),
            &mode,
        );
    }
    Ok(state)
}

/// The highest sequence imported from `source_id`, and the bundle that carried it.
pub fn last_sequence(s: &mut dyn Session, source_id: &str) -> Result<Option<(u64, String)>> {
    if !s.ledger_exists()? {
        return Ok(None);
    }
    let d = s.dialect();
    let sql = format!(
        "SELECT {}, {} FROM {} WHERE source_id = {} ORDER BY sequence DESC LIMIT 1",
        (d.as_text)("sequence"),
        (d.as_text)("bundle_id"),
        s.ledger_table(),
        d.ph(1)
    );
    let rows = s.query_text("reading the ledger", &sql, &[Param::Text(source_id)])?;
    Ok(rows
        .into_iter()
        .next()
        .map(|r| (first(&r, 0).parse().unwrap_or(0), first(&r, 1))))
}

/// Another bundle of the same source with a higher sequence that published into `table`
/// (replace), with its bundle id.
pub fn newer_published(
    s: &mut dyn Session,
    table: &str,
    source_id: &str,
    bundle_id: &str,
    sequence: u64,
) -> Result<Option<(u64, String)>> {
    let d = s.dialect();
    let sql = format!(
        "SELECT {}, {} FROM {} WHERE target_table = {} AND source_id = {} AND mode = {} \
         AND bundle_id <> {} AND sequence > {} ORDER BY sequence DESC LIMIT 1",
        (d.as_text)("sequence"),
        (d.as_text)("bundle_id"),
        s.ledger_table(),
        d.ph(1),
        d.ph(2),
        d.ph(3),
        d.ph(4),
        d.ph(5)
    );
    let seq = int(sequence);
    let rows = s.query_text(
        "reading the ledger",
        &sql,
        &[
            Param::Text(table),
            Param::Text(source_id),
            Param::Text(PUBLISHED),
            Param::Text(bundle_id),
            Param::Int(seq),
        ],
    )?;
    Ok(rows
        .into_iter()
        .next()
        .map(|r| (first(&r, 0).parse().unwrap_or(0), first(&r, 1))))
}

/// The parts of `table` this bundle staged and has not published.
pub fn staged_parts(s: &mut dyn Session, bundle_id: &str, table: &str) -> Result<Vec<String>> {
    let d = s.dialect();
    let sql = format!(
        "SELECT {} FROM {} WHERE bundle_id = {} AND target_table = {} AND mode = {} ORDER BY part_path",
        (d.as_text)("part_path"),
        s.ledger_table(),
        d.ph(1),
        d.ph(2),
        d.ph(3)
    );
    let rows = s.query_text(
        "reading the ledger",
        &sql,
        &[
            Param::Text(bundle_id),
            Param::Text(table),
            Param::Text(STAGED),
        ],
    )?;
    Ok(rows.iter().map(|r| first(r, 0)).collect())
}

/// Moves one part's ledger row from `from` to mode `to` (by primary key only: a scan would
/// wait on the rows other workers' open part transactions hold under MySQL's REPEATABLE READ).
pub fn set_mode(
    s: &mut dyn Session,
    bundle_id: &str,
    part: &str,
    from: &str,
    to: &str,
) -> Result<()> {
    let d = s.dialect();
    let sql = format!(
        "UPDATE {} SET mode = {} WHERE bundle_id = {} AND part_path = {} AND mode = {}",
        s.ledger_table(),
        d.ph(1),
        d.ph(2),
        d.ph(3),
        d.ph(4)
    );
    s.execute(
        "writing the ledger",
        &sql,
        &[
            Param::Text(to),
            Param::Text(bundle_id),
            Param::Text(part),
            Param::Text(from),
        ],
    )
    .map(|_| ())
}

/// Forgets one staged part (its staging table is being dropped).
pub fn forget(s: &mut dyn Session, bundle_id: &str, part: &str) -> Result<()> {
    let d = s.dialect();
    let sql = format!(
        "DELETE FROM {} WHERE bundle_id = {} AND part_path = {} AND mode = {}",
        s.ledger_table(),
        d.ph(1),
        d.ph(2),
        d.ph(3)
    );
    s.execute(
        "writing the ledger",
        &sql,
        &[
            Param::Text(bundle_id),
            Param::Text(part),
            Param::Text(STAGED),
        ],
    )
    .map(|_| ())
}
