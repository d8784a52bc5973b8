//! The `ferry` command line: clap types turned into plans, plans handed to the library,
//! errors turned into exit codes (README, "Commands": exit codes). No logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueHint};
use ferry::crypto::keys::{AgeIdentity, AgeRecipient, KeyFileKey, Keys, Passphrase};
use ferry::error::Error;
use ferry::export::ExportPlan;
use ferry::import::{Failed, ImportPlan, MaxErrors, Mode, OnError};
use ferry::report::{Progress, RunReport};
use ferry::source::{BatchLimits, Selection, SourceOptions, ZeroDates};

/// `eprintln!` that never panics: a closed stderr (`ferry … 2>&1 | head -1`) drops the line
/// instead of ending the run with a panic (exit 101).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// `ferry --version`: the tool's version and the bundle format versions it writes and reads
/// (a test holds it to `ferry::bundle::manifest`'s constants).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (bundle format: writes 1.0, and 1.1 for a link of a chain; reads 1.x)"
);

#[derive(Parser)]
#[command(
    name = "ferry",
    version = VERSION,
    about = "Move relational data between databases through encrypted, portable Parquet bundles",
    long_about = "ferry exports tables from a database into a bundle (encrypted, zstd-compressed Parquet parts \
                  with an authenticated manifest) on disk, and imports a verified bundle into another database, \
                  exactly once.\n\nExit codes: 0 success (also: already imported), 1 failure, 2 usage, \
                  65 invalid bundle or data, 75 temporary (safe to re-run), 77 key problem."
)]
struct Cli {
    #[command(flatten)]
    out: OutputArgs,
    /// Take this command's options from a TOML job file (its `[COMMAND]` table and its
    /// top-level keys); options on the command line override it (README, "Job files").
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// With --config: also apply the job file's stage NAME (its `[COMMAND.NAME]` table).
    #[arg(long, global = true, value_name = "NAME", requires = "config")]
    stage: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// Options shared by every command that prints a summary.
#[derive(Args, Clone)]
struct OutputArgs {
    /// Print the summary as one JSON document on stdout (progress stays on stderr).
    #[arg(long, global = true)]
    json: bool,
    /// No progress output on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
}

/// How to open an encrypted bundle (or encrypt a new one).
#[derive(Args, Clone, Default)]
struct KeyArgs {
    /// Key file made by `ferry keygen` (repeatable): opens a bundle that has a slot for it;
    /// export gives the new bundle a slot for each.
    #[arg(long = "key-file", value_name = "PATH", env = KEY_FILE_ENV)]
    key_files: Vec<PathBuf>,
    /// Name of an environment variable holding a passphrase (never the passphrase itself).
    #[arg(long = "passphrase-env", value_name = "VAR")]
    passphrase_env: Vec<String>,
    /// age identity file (`ferry keygen --age` or `age-keygen`; several identities per file
    /// allowed) that opens the bundle's age slots (repeatable; export also wraps the data key
    /// for its recipient).
    #[arg(long = "identity", value_name = "FILE", env = IDENTITY_ENV)]
    identities: Vec<PathBuf>,
}

/// Recipients `export` encrypts to: the sender holds no secret that opens the bundle.
#[derive(Args, Clone, Default)]
struct RecipientArgs {
    /// age X25519 recipient `age1…` to encrypt to (repeatable): a key slot each; only its
    /// identity opens the bundle.
    #[arg(long = "recipient", value_name = "age1…")]
    recipients: Vec<String>,
    /// File of age recipients, one per line (`#` comments, blank lines), as age's `-R`
    /// (repeatable).
    #[arg(long = "recipients-file", value_name = "FILE")]
    recipients_files: Vec<PathBuf>,
}

impl RecipientArgs {
    /// The options given, for messages.
    fn given(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.recipients.is_empty() {
            out.push("--recipient".to_string());
        }
        if !self.recipients_files.is_empty() {
            out.push("--recipients-file".to_string());
        }
        out
    }

    fn load(&self) -> Result<Vec<AgeRecipient>, Error> {
        let mut out = Vec::new();
        for r in &self.recipients {
            out.push(AgeRecipient::parse(r, "--recipient")?);
        }
        for f in &self.recipients_files {
            out.extend(AgeRecipient::load_file(f)?);
        }
        Ok(out)
    }
}

/// Which signers a reading command trusts (docs/SECURITY.md, "Signed manifests").
#[derive(Args, Clone, Default)]
struct TrustArgs {
    /// Require the manifest to be signed by this minisign public key (`RW…`, as `ferry keygen
    /// --signing` prints it); repeatable. Checked before any key slot is opened; else exit 77.
    #[arg(long = "trust", value_name = "PUBKEY")]
    trust: Vec<String>,
    /// As --trust, with the keys of FILE: a minisign .pub file, or `RW…` keys one a line
    /// (`#` comments allowed); repeatable.
    #[arg(long = "trust-file", value_name = "FILE")]
    trust_files: Vec<PathBuf>,
}

impl TrustArgs {
    fn load(&self) -> Result<ferry::crypto::signing::TrustList, Error> {
        let mut t = ferry::crypto::signing::TrustList::default();
        for k in &self.trust {
            t.add_key(k)?;
        }
        for f in &self.trust_files {
            t.add_file(f)?;
        }
        Ok(t)
    }
}

/// `--mask` and its key, shared by `export` and `plan`.
#[derive(Args, Clone, Default)]
struct MaskArgs {
    /// Mask a column before it leaves the source, as `TABLE.COLUMN=RULE` (repeatable). Rules:
    /// null, redact, hash (HMAC-SHA256, hex), email (hash the local part, keep @domain),
    /// truncate:N. NULL stays NULL. A name holding a dot is double-quoted:
    /// 't."a.b"=hash' (a quote inside one doubled).
    #[arg(long = "mask", value_name = "TABLE.COLUMN=RULE")]
    masks: Vec<String>,
    /// Key file (made by `ferry keygen`) the HMAC key of hash and email is derived from;
    /// the same file gives the same hashes in every export, so masked tables still join.
    #[arg(long, value_name = "PATH")]
    mask_key_file: Option<PathBuf>,
}

impl MaskArgs {
    #[allow(clippy::type_complexity)]
    fn load(
        &self,
    ) -> Result<
        (
            Vec<ferry::mask::MaskSpec>,
            Option<std::sync::Arc<ferry::mask::MaskKey>>,
            Vec<String>,
        ),
        Error,
    > {
        let specs = self
            .masks
            .iter()
            .map(|m| ferry::mask::MaskSpec::parse(m))
            .collect::<Result<_, _>>()?;
        let (key, warnings) = match &self.mask_key_file {
            Some(p) => {
                // A bad mask key is no bundle key: say which option it came from.
                let (k, w) = KeyFileKey::load(p).map_err(|e| match e {
                    Error::Key(m) => Error::Key(format!("--mask-key-file: {m}")),
                    other => other,
                })?;
                (
                    Some(std::sync::Arc::new(ferry::mask::MaskKey::derive(&k))),
                    w,
                )
            }
            None => (None, vec![]),
        };
        Ok((specs, key, warnings))
    }
}

/// The environment variable `--key-file` falls back to.
const KEY_FILE_ENV: &str = "FERRY_KEY_FILE";
/// The environment variable `--identity` falls back to.
const IDENTITY_ENV: &str = "FERRY_IDENTITY";

impl KeyArgs {
    /// `--no-encrypt` with a key option is a contradiction, not a choice: refused (exit 2)
    /// before anything is read or written, naming the option. `FERRY_KEY_FILE` or
    /// `FERRY_IDENTITY` set in the environment counts too: it may stand for a key the user
    /// expects to be used. `also` are other key options given (`--recipient`).
    fn refuse_with_no_encrypt(&self, also: Vec<String>) -> Result<(), Error> {
        let mut given = Vec::new();
        let mut envs = Vec::new();
        for (flag, values, var) in [
            ("--key-file", &self.key_files, KEY_FILE_ENV),
            ("--identity", &self.identities, IDENTITY_ENV),
        ] {
            let env = std::env::var_os(var);
            // clap takes the variable only when the option is absent from the command line.
            let from_env = env
                .as_ref()
                .is_some_and(|v| values.iter().all(|p| p.as_os_str() == v));
            if !values.is_empty() && !from_env {
                given.push(flag.to_string());
            }
            if env.is_some() {
                envs.push(var);
            }
        }
        if !self.passphrase_env.is_empty() {
            given.push("--passphrase-env".to_string());
        }
        given.extend(also);
        given.extend(envs.iter().map(|v| format!("{v} (set in the environment)")));
        if given.is_empty() {
            return Ok(());
        }
        let fix = if envs.is_empty() {
            String::new()
        } else {
            format!("; unset {} to write a plain bundle", envs.join(" and "))
        };
        Err(Error::Usage(format!(
            "--no-encrypt conflicts with {}: a bundle is either encrypted with a key or plain, \
             so ferry does not guess which was meant; drop --no-encrypt to encrypt with the \
             key, or drop the key option to write plain Parquet{fix}. Nothing written",
            given.join(" and ")
        )))
    }

    /// The variables among `FERRY_KEY_FILE` and `FERRY_IDENTITY` that supplied this
    /// command's keys (the option itself was absent from the command line).
    fn keys_from_env(&self) -> Vec<&'static str> {
        [
            (&self.key_files, KEY_FILE_ENV),
            (&self.identities, IDENTITY_ENV),
        ]
        .into_iter()
        .filter(|(values, var)| {
            !values.is_empty()
                && std::env::var_os(var).is_some_and(|v| values.iter().all(|p| p.as_os_str() == v))
        })
        .map(|(_, var)| var)
        .collect()
    }

    /// An export to age recipients is for a receiver the sender cannot decrypt for: a key
    /// file or identity that the sender's own environment supplies would add a slot the
    /// sender opens, unseen. Refused (exit 2); the same key given as an option is a choice.
    fn refuse_env_keys_with_recipients(&self, recipients: &[String]) -> Result<(), Error> {
        let envs = self.keys_from_env();
        if recipients.is_empty() || envs.is_empty() {
            return Ok(());
        }
        let opts: Vec<String> = envs
            .iter()
            .map(|v| {
                let flag = if *v == KEY_FILE_ENV {
                    "--key-file"
                } else {
                    "--identity"
                };
                format!("{flag} \"${v}\"")
            })
            .collect();
        Err(Error::Usage(format!(
            "{} given with {} set in the environment: the bundle would also open with what {} \
             names, on this machine, so the sender could decrypt what it sends to the recipient. \
             Unset {} to export for the recipients alone, or pass {} on the command line to add \
             that slot knowingly. Nothing written",
            recipients.join(" and "),
            envs.join(" and "),
            if envs.len() == 1 { "it" } else { "they" },
            envs.join(" and "),
            opts.join(" ")
        )))
    }

    fn load(&self) -> Result<(Keys, Vec<String>), Error> {
        let mut keys = Keys::default();
        let mut warnings = Vec::new();
        for p in &self.key_files {
            let (k, w) = KeyFileKey::load(p)?;
            keys.key_files.push(k);
            warnings.extend(w);
        }
        for p in &self.identities {
            let (ids, w) = AgeIdentity::load(p)?;
            keys.identities.extend(ids);
            warnings.extend(w);
        }
        for v in &self.passphrase_env {
            keys.passphrases.push(Passphrase::from_env(v)?);
        }
        Ok((keys, warnings))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Export tables from a database into a new bundle.
    Export {
        /// Source database: sqlite://PATH, postgres://user:pw@host:port/db or
        /// mysql://user:pw@host:port/db (MySQL and MariaDB; mariadb:// too).
        source: String,
        /// Where the bundle goes: a new directory, file://PATH, or s3://bucket/prefix (also
        /// gs://, az://; credentials from the AWS_*, GOOGLE_*, AZURE_* environment).
        #[arg(value_hint = ValueHint::AnyPath)]
        bundle: String,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        recipients: RecipientArgs,
        /// Write plain Parquet without encryption (the manifest says so).
        #[arg(long)]
        no_encrypt: bool,
        /// Sign the manifest with this minisign secret key (`ferry keygen --signing`, or
        /// `minisign -G -W`): writes manifest.json.minisig, which `minisign -Vm manifest.json
        /// -P PUBKEY` and `--trust PUBKEY` check.
        #[arg(long, value_name = "FILE", env = "FERRY_SIGN_KEY")]
        sign_key: Option<PathBuf>,
        /// Export only this table (repeatable; `table` or `schema.table`).
        #[arg(long = "table", value_name = "NAME")]
        tables: Vec<String>,
        /// Leave this table out (repeatable).
        #[arg(long, value_name = "NAME")]
        exclude: Vec<String>,
        /// Export only the rows of TABLE matching PREDICATE, as `TABLE:PREDICATE` (repeatable).
        #[arg(long = "where", value_name = "TABLE:PREDICATE")]
        wheres: Vec<String>,
        /// Rows per Arrow batch: memory per batch in flight (two batches at most wait between
        /// reader and writer). Default 65536, divided by --jobs so parallel exports keep the
        /// same memory budget.
        #[arg(long)]
        batch_rows: Option<usize>,
        /// Rows per Parquet row group (also capped at 64 MiB, shared by all jobs): larger groups compress better
        /// and cost more memory. Default 1048576; with --jobs N, 3/8 of that per job, which
        /// keeps a parallel export near the single-stream memory budget.
        #[arg(long)]
        row_group_rows: Option<usize>,
        /// zstd level inside the Parquet pages: 1 (fastest) to 22 (smallest).
        #[arg(long, default_value_t = ferry::bundle::parts::DEFAULT_ZSTD_LEVEL, value_name = "N")]
        zstd_level: i32,
        /// Start a new part when one reaches this size (e.g. 512MiB, 1GiB; always under 4 GiB for FAT32).
        #[arg(long, default_value = "1GiB", value_parser = parse_size)]
        max_part_size: u64,
        /// Also start a new part when one holds this many rows (0: no bound), so an import
        /// loads a big table's parts over several connections (--streams) and resumes in
        /// smaller steps.
        #[arg(long, default_value_t = ferry::export::DEFAULT_MAX_PART_ROWS, value_name = "N")]
        max_part_rows: u64,
        /// Source id recorded in the manifest (default: derived from the source).
        #[arg(long)]
        source_id: Option<String>,
        /// Per-source sequence number (default: the time in microseconds).
        #[arg(long)]
        sequence: Option<u64>,
        /// List what would be exported, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Connections reading at once, all on one snapshot: tables in parallel, and tables over
        /// --split-min-size as parallel ranges (PostgreSQL; SQLite uses one).
        #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        jobs: usize,
        /// Connections one table of at least --split-min-size is read over at once, each
        /// taking the next range of it, into the same parts (PostgreSQL; the others read on
        /// one). Default: the machine's cores, at most 4. With --jobs above 1 (which reads
        /// large tables as ranges already) only 1.
        #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        streams: Option<usize>,
        /// Tables at least this large are read as several ranges at once (--streams, --jobs).
        #[arg(long, default_value = "64MiB", value_parser = parse_split_size)]
        split_min_size: u64,
        /// MySQL/MariaDB zero dates (0000-00-00, or a zero month or day): `error` (default)
        /// names table, column and row; `null` exports them as NULL.
        #[arg(long, value_enum, default_value_t = ZeroDates::Error)]
        zero_dates: ZeroDates,
        /// Start a chain of bundles: TABLE travels by changes of COLUMN (an integer, date,
        /// timestamp or ISO-8601 text that grows with every insert and update; the table needs
        /// a primary key).
        /// Repeatable. The bundle records each cursor's high-water mark, read in its snapshot.
        #[arg(long = "cursor", value_name = "TABLE=COLUMN")]
        cursors: Vec<String>,
        /// Write the next link of PREV_BUNDLE's chain: cursor tables carry the rows at or above
        /// PREV_BUNDLE's marks (minus --lookback), the other tables travel whole. Key options open PREV_BUNDLE.
        #[arg(long, value_name = "PREV_BUNDLE", value_hint = ValueHint::AnyPath)]
        since: Option<String>,
        /// How far below the previous marks a link reads, for rows whose transactions commit late:
        /// a duration (90s, 5m, 2h, 1d) for temporal cursors, a count (1000) for integer cursors.
        /// Give both for a chain with both kinds of cursor (--lookback 5m --lookback 1000).
        #[arg(long, value_name = "DURATION|COUNT", value_parser = parse_lookback)]
        lookback: Vec<ferry::chain::Lookback>,
        /// With --since: also carry each cursor table's primary-key set, so the import deletes
        /// the rows the source deleted (under --max-delete-ratio).
        #[arg(long)]
        deletes: bool,
        #[command(flatten)]
        mask: MaskArgs,
        /// Sharded export (PostgreSQL; README, "Sharded export"): with --coordinate, plan N
        /// workers that share one snapshot (with --shard I: checked against the plan).
        #[arg(long, value_name = "N")]
        shards: Option<usize>,
        /// With --shards N: open the snapshot, write the shard plan into the bundle location
        /// and hold the snapshot until `ferry seal` (or --coordinate-timeout).
        #[arg(long, requires = "shards", conflicts_with = "shard")]
        coordinate: bool,
        /// How long the coordinator holds the snapshot at most (90s, 30m, 12h, 2d).
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
        coordinate_timeout: std::time::Duration,
        /// Run worker I (0-based) of the shard plan at BUNDLE, on any machine, in any order;
        /// a re-run replaces this shard's parts.
        #[arg(long, value_name = "I")]
        shard: Option<usize>,
    },
    /// After every shard of a sharded export is done: write the catalog, checksums and the
    /// manifest (the bundle is complete only then) and release the coordinator's snapshot.
    Seal {
        /// The bundle location the shards wrote to.
        #[arg(value_hint = ValueHint::AnyPath)]
        bundle: String,
        #[command(flatten)]
        keys: KeyArgs,
        /// Sign the manifest with this minisign secret key (as `export --sign-key`).
        #[arg(long, value_name = "FILE", env = "FERRY_SIGN_KEY")]
        sign_key: Option<PathBuf>,
    },
    /// Show what an export would carry and what an import into TARGET would make of it:
    /// per table rows, bytes and primary key; per column source type -> canonical type ->
    /// target type with a verdict (exact, mapped, refused); what is not carried. Needs no
    /// key and writes nothing.
    Plan {
        /// Source database: sqlite://PATH, postgres://… or mysql://…
        source: String,
        /// The database an import would go into (default: the source's own engine, as a
        /// same-engine import would create the tables). Only read: MySQL for its version.
        #[arg(long)]
        target: Option<String>,
        /// Plan only this table (repeatable; `table` or `schema.table`).
        #[arg(long = "table", value_name = "NAME")]
        tables: Vec<String>,
        /// Leave this table out (repeatable).
        #[arg(long, value_name = "NAME")]
        exclude: Vec<String>,
        /// Count the rows of TABLE matching PREDICATE, as `TABLE:PREDICATE` (repeatable); the
        /// predicate is checked as export checks it.
        #[arg(long = "where", value_name = "TABLE:PREDICATE")]
        wheres: Vec<String>,
        /// Count every table's rows (inside one snapshot) instead of estimating them.
        #[arg(long)]
        exact: bool,
        /// Plan for an import given --as-text.
        #[arg(long)]
        as_text: bool,
        #[command(flatten)]
        mask: MaskArgs,
    },
    /// Verify a bundle and load it into a database, exactly once.
    Import {
        /// The bundle: a directory, file://PATH, or s3://bucket/prefix (gs://, az://).
        #[arg(value_hint = ValueHint::AnyPath)]
        bundle: String,
        /// Target database: sqlite://PATH (created when missing), postgres://user:pw@host:port/db or
        /// mysql://user:pw@host:port/db (MySQL and MariaDB; mariadb:// too).
        target: String,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        trust: TrustArgs,
        /// create (default): new or empty tables only; append: add rows; replace: load into a
        /// staging table, then swap all rows in one transaction (readers see old or new, never
        /// a mix); upsert: insert or update by primary key (tables without one are refused).
        #[arg(long, value_enum, default_value_t = Mode::Create)]
        mode: Mode,
        /// Load only this table of the bundle (repeatable).
        #[arg(long = "table", value_name = "NAME")]
        tables: Vec<String>,
        /// Do not load this table (repeatable).
        #[arg(long, value_name = "NAME")]
        exclude: Vec<String>,
        /// Load table SRC into table DST (repeatable), as `SRC=DST`.
        #[arg(long, value_name = "SRC=DST")]
        rename: Vec<String>,
        /// PostgreSQL schema to load every table into (default: each table's own schema, else public).
        #[arg(long)]
        target_schema: Option<String>,
        /// Files in the bundle that the manifest does not list are an error, not a warning.
        #[arg(long)]
        strict: bool,
        /// Replay expressions outside the allowlist (docs/EXPRESSIONS.md): defaults, CHECKs and
        /// generated columns calling other functions, still parsed and rebuilt. Only for a
        /// bundle signed by a --trust'ed key; else exit 77 before anything is written.
        #[arg(long)]
        trust_expressions: bool,
        /// Verify everything and print the plan; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Load a bundle even if a newer one (higher sequence) from the same source was imported already.
        #[arg(long)]
        allow_replay: bool,
        /// Accept a plain (--no-encrypt) bundle, knowing that nothing authenticates it: without a MAC,
        /// anyone who could write the bundle could have made it. Never together with a key option.
        #[arg(long)]
        allow_unencrypted: bool,
        /// Into another engine, load as PostgreSQL's text form the columns the target has no type for:
        /// types with no portable form (inet, tsvector, ranges, …), and intervals, arrays and decimals
        /// wider than the target holds. Without it such columns are refused by name, before any write.
        #[arg(long)]
        as_text: bool,
        /// Load this many tables at once, each on its own connection (PostgreSQL; SQLite uses one).
        #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        jobs: usize,
        /// Connections one table loads its parts over when it has at least 2 parts left
        /// (PostgreSQL, MySQL/MariaDB; SQLite keeps one writer). With --jobs J up to J × N
        /// connections. Default: 2.
        #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        streams: Option<usize>,
        /// A bundle on an object store is downloaded once into a private spool directory made
        /// here (ciphertext only; removed at the end). Default: the system's temporary directory.
        #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
        spool_dir: Option<PathBuf>,
        /// The largest bundle spooled (default 4GiB); a larger one, or 0, is read twice from the
        /// store (once to verify, once to load), as the summary's warning says.
        #[arg(long, default_value = "4GiB", value_parser = parse_split_size, value_name = "SIZE")]
        spool_limit: u64,
        /// Apply a link of a chain even though its predecessor is not applied to this target
        /// (rows changed in the missing links are then missing here).
        #[arg(long)]
        accept_gap: bool,
        /// A link's deletes may remove at most this fraction of a table's rows (default 0.1);
        /// more is refused (exit 65) with nothing deleted.
        #[arg(long, default_value_t = 0.1, value_parser = parse_ratio)]
        max_delete_ratio: f64,
        /// Allow --mode replace of a table exported with --where (the target keeps only the
        /// filtered rows).
        #[arg(long)]
        replace_partial: bool,
        /// PostgreSQL: load a deliberate second copy into --target-schema, with a ledger of its
        /// own there. Without it a database has one ledger (schema public), and a bundle already
        /// loaded into another schema of the database is "already imported".
        #[arg(long)]
        separate_copy: bool,
        /// A row the target refuses (a CHECK, NOT NULL, a duplicate key, a foreign key it checks,
        /// a value out of range): `fail` (default) rolls its part back and stops; `skip` sets the
        /// row aside and commits the part's other rows, counting it in the error rate E.
        /// Anything else (a lost connection, a lock timeout, a full disk) still fails the run.
        #[arg(long, value_enum, default_value_t = OnError::Fail)]
        on_error: OnError,
        /// With --on-error skip: stop (exit 65, the part going over rolled back) once more than N
        /// rows, or P% of the rows of the bundle's selected tables, were refused (earlier runs of
        /// the bundle included). Default: no limit.
        #[arg(long, value_name = "N|P%", value_parser = MaxErrors::parse)]
        max_errors: Option<MaxErrors>,
        /// With --on-error skip: write the refused rows into this local directory, one Parquet file
        /// per part (columns table, part, row, reason, then the row's own). Without it they are
        /// only counted.
        #[arg(long, value_name = "DIR")]
        rejects: Option<PathBuf>,
    },
    /// Check a bundle: without a key sizes and SHA-256 of every file; with a key also decrypt and decode every part.
    Verify {
        /// The bundle: a directory, file://PATH, or s3://bucket/prefix (gs://, az://).
        #[arg(value_hint = ValueHint::AnyPath)]
        bundle: String,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        trust: TrustArgs,
        /// Files the manifest does not list are an error, not a warning.
        #[arg(long)]
        strict: bool,
    },
    /// Show a bundle's files and sizes, the key ids of its slots, its signer and the
    /// fingerprint of its manifest (to compare with the sender's); with a key also its
    /// tables, columns, rows and lineage.
    Inspect {
        /// The bundle: a directory, file://PATH, or s3://bucket/prefix (gs://, az://).
        #[arg(value_hint = ValueHint::AnyPath)]
        bundle: String,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// What a target database holds: the bundles and chain links applied, with times, rows and
    /// parts, and unfinished imports.
    Status {
        /// Target database: sqlite://PATH, postgres://…, mysql://…
        target: String,
        /// PostgreSQL: read the ledger of a second copy loaded with
        /// `import --target-schema S --separate-copy` (default: the database's ledger).
        #[arg(long)]
        target_schema: Option<String>,
    },
    /// List what killed or failed exports left under a bundle location (parts no manifest
    /// lists, or everything when there is no manifest.json); `--delete` removes it. A complete
    /// bundle's files and objects of other names are never touched.
    Gc {
        /// The bundle location: a directory, file://PATH, or s3://bucket/prefix (gs://, az://).
        #[arg(value_hint = ValueHint::AnyPath)]
        bundle: String,
        /// Remove the leftovers (default: only list them).
        #[arg(long)]
        delete: bool,
        /// With --delete: refuse (exit 75) while the newest object under the location is
        /// younger than this (an export may still be writing there): 90s, 30m, 1h, 2d, or 0.
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_age)]
        older_than: std::time::Duration,
    },
    /// Compare two sides table by table (each a database or a bundle): columns, row counts and
    /// content over canonical values; a difference names table, columns and keys. Exit 1 when
    /// anything differs.
    Compare {
        /// A database URL (sqlite://, postgres://, mysql://, mariadb://) or a bundle (a
        /// directory, file://PATH, s3://bucket/prefix; key options open it).
        a: String,
        /// The other side, as A.
        b: String,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        trust: TrustArgs,
        /// Compare only this table (repeatable; either side's name for it).
        #[arg(long = "table", value_name = "NAME")]
        tables: Vec<String>,
        /// A's tables are those of this schema (PostgreSQL), compared as `t`, not `S.t`.
        #[arg(long, value_name = "S")]
        schema_a: Option<String>,
        /// B's tables are those of this schema (PostgreSQL), compared as `t`, not `S.t`.
        #[arg(long, value_name = "S")]
        schema_b: Option<String>,
        /// A's table SRC is B's table DST (repeatable), as import's --rename.
        #[arg(long, value_name = "SRC=DST")]
        rename: Vec<String>,
        /// Name up to N keys that differ per table (tables with a primary key; 0: none, and
        /// no second pass).
        #[arg(long, value_name = "N", default_value_t = 10)]
        show: usize,
        /// Accept a plain (--no-encrypt) bundle side, knowing that nothing authenticates it.
        #[arg(long)]
        allow_unencrypted: bool,
    },
    /// Write a verified bundle's data as plain Parquet files into DIR.
    Decrypt {
        /// The bundle: a directory, file://PATH, or s3://bucket/prefix (gs://, az://).
        #[arg(value_hint = ValueHint::AnyPath)]
        bundle: String,
        dir: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        trust: TrustArgs,
        /// Accept a plain (--no-encrypt) bundle, knowing that nothing authenticates it: without a MAC,
        /// anyone who could write the bundle could have made it. Never together with a key option.
        #[arg(long)]
        allow_unencrypted: bool,
    },
    /// Print a shell completion script: `ferry completions bash > /etc/bash_completion.d/ferry`,
    /// zsh (into a directory on $fpath as `_ferry`), fish (`~/.config/fish/completions/ferry.fish`),
    /// elvish, powershell.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `ferry man > ~/.local/share/man/man1/ferry.1`, then `man ferry`
    /// (or read it at once with `ferry man | man -l -`).
    Man,
    /// Add and remove key slots of an encrypted bundle: rewrites manifest.json and
    /// manifest.mac only; the catalog and every part stay byte-identical.
    ///
    /// The key options open the bundle; its manifest and MAC are checked (a manifest whose
    /// MAC fails is refused, exit 65), but the parts are not re-hashed (run `ferry verify`
    /// for that): nothing of them is read or written. Added slots wrap the same data key.
    /// The manifest is replaced atomically (rename under the directory's lock on disk, a
    /// conditional put on object stores): a rekey killed at any point leaves the old
    /// manifest or the new one, each verifiable, and of two concurrent rekeys one wins, the
    /// other exits 75 having changed nothing.
    Rekey {
        /// The bundle: a directory, file://PATH, or s3://bucket/prefix (gs://, az://).
        #[arg(value_hint = ValueHint::AnyPath)]
        bundle: String,
        #[command(flatten)]
        keys: KeyArgs,
        /// Add a slot for this key file (repeatable; a key that has a slot already is noted and skipped).
        #[arg(long = "add-key-file", value_name = "PATH")]
        add_key_files: Vec<PathBuf>,
        /// Add a slot for the passphrase in this environment variable (repeatable; the NAME, never the passphrase).
        #[arg(long = "add-passphrase-env", value_name = "VAR")]
        add_passphrase_env: Vec<String>,
        /// Remove the slot with this key id (`k1_…` key file, `p1_…` passphrase, `a1_…` age
        /// recipient; repeatable; `ferry inspect` lists them). The last slot cannot be removed.
        #[arg(long = "remove-slot", value_name = "KEY_ID")]
        remove_slots: Vec<String>,
        /// Add a slot for this age recipient `age1…` (repeatable; one that has a slot already
        /// is noted and skipped).
        #[arg(long = "add-recipient", value_name = "age1…")]
        add_recipients: Vec<String>,
        /// Add a slot for each age recipient in FILE (age's `-R` format; repeatable).
        #[arg(long = "add-recipients-file", value_name = "FILE")]
        add_recipients_files: Vec<PathBuf>,
        /// Sign the new manifest with this minisign secret key (writes
        /// manifest.json.minisig). Without it, rekeying a signed bundle is refused unless
        /// --drop-signature is given (the old signature would no longer verify). Alone, it
        /// (re)signs the bundle without changing a slot.
        #[arg(long, value_name = "FILE", env = "FERRY_SIGN_KEY")]
        sign_key: Option<PathBuf>,
        /// Signers whose signature the bundle must carry (as on readers). --sign-key re-signs
        /// only a bundle signed by the signing key itself or by one of these.
        #[command(flatten)]
        trust: TrustArgs,
        /// With --sign-key: sign although the present signature cannot be checked (an unsigned
        /// bundle, or a rekey killed before it wrote the signature). Check the bundle's
        /// fingerprint with its sender first.
        #[arg(long, requires = "sign_key")]
        sign_unverified: bool,
        /// Remove the signature of a signed bundle that is rekeyed without --sign-key (it
        /// would no longer verify); without this, such a rekey is refused. Does nothing to
        /// an unsigned bundle.
        #[arg(long, conflicts_with = "sign_key")]
        drop_signature: bool,
    },
    /// Make a new 256-bit key file (mode 0600) and print its key id; with --age, an age
    /// identity (print its recipient); with --signing, a minisign signing key.
    #[command(
        override_usage = "ferry keygen [OPTIONS] KEY_FILE\n       ferry keygen [OPTIONS] --age FILE\n       ferry keygen [OPTIONS] --signing FILE"
    )]
    Keygen {
        /// The file to create (never overwritten).
        #[arg(required_unless_present = "signing")]
        key_file: Option<PathBuf>,
        /// Write an age X25519 identity in `age-keygen`'s format instead (mode 0600) and print
        /// its recipient `age1…`, the public key senders export to (--recipient).
        #[arg(long, conflicts_with = "signing")]
        age: bool,
        /// Write an Ed25519 minisign secret key to FILE (0600, unencrypted, for batch
        /// exports) and its public key to FILE.pub; print the public key and its key id.
        #[arg(long, value_name = "FILE", conflicts_with = "key_file")]
        signing: Option<PathBuf>,
    },
}

/// `gc --older-than`: a duration (`90s`, `30m`, `1h`, `2d`) or 0.
fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    match ferry::chain::Lookback::parse(s)? {
        ferry::chain::Lookback::Time(d) => Ok(d),
        ferry::chain::Lookback::Count(0) => Ok(std::time::Duration::ZERO),
        ferry::chain::Lookback::Count(_) => Err(format!(
            "{s:?}: give a duration with its unit: 90s, 30m, 1h, 2d (or 0)"
        )),
    }
}

/// A size with units, any value.
fn parse_lookback(s: &str) -> Result<ferry::chain::Lookback, String> {
    ferry::chain::Lookback::parse(s)
}

/// `90s`, `30m`, `12h`, `2d`.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    match ferry::chain::Lookback::parse(s)? {
        ferry::chain::Lookback::Time(d) => Ok(d),
        ferry::chain::Lookback::Count(_) => Err(format!(
            "{s:?}: give a duration with its unit (90s, 30m, 12h, 2d)"
        )),
    }
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{s:?}: give a fraction from 0 to 1 (0.1 = 10%)")),
    }
}

fn parse_split_size(s: &str) -> Result<u64, String> {
    parse_bytes(s)
}

/// A part size: `512MiB`, `1GiB`; at least 1 MiB and under 4 GiB (FAT32).
fn parse_size(s: &str) -> Result<u64, String> {
    let v = parse_bytes(s)?;
    if v < (1 << 20) {
        return Err("a part must be allowed at least 1MiB".into());
    }
    if v >= (4u64 << 30) {
        return Err("parts must stay under 4GiB (FAT32 media)".into());
    }
    Ok(v)
}

/// `512MiB`, `1GiB`, `1000000` (bytes).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a size like 512MiB or 1GiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => return Err(format!("{other:?}: unknown size unit (use KiB, MiB, GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| "size too large".to_string())
}

fn split_pair<'a>(s: &'a str, sep: char, what: &str) -> Result<(String, String), Error> {
    s.split_once(sep)
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .map(|(a, b): (&'a str, &'a str)| (a.to_string(), b.to_string()))
        .ok_or_else(|| Error::Usage(format!("{what} {s:?}: expected the form A{sep}B")))
}

/// Runs one command: its summary, or its error (with the summary of what it did before
/// failing, where it has one: import).
fn run(cmd: Command, out: &OutputArgs) -> Result<RunReport, Failed> {
    let progress = if out.quiet {
        Progress::hidden()
    } else {
        Progress::new(false)
    };
    match cmd {
        Command::Export {
            source,
            bundle,
            keys,
            recipients,
            no_encrypt,
            sign_key,
            tables,
            exclude,
            wheres,
            batch_rows,
            row_group_rows,
            zstd_level,
            max_part_size,
            max_part_rows,
            source_id,
            sequence,
            dry_run,
            jobs,
            streams,
            split_min_size,
            zero_dates,
            cursors,
            since,
            lookback,
            deletes,
            mask,
            shards,
            coordinate,
            coordinate_timeout,
            shard,
        } => {
            let (masks, mask_key, mask_warnings) = mask.load()?;
            let (keys, warnings) = if no_encrypt {
                keys.refuse_with_no_encrypt(recipients.given())?;
                (Keys::default(), vec![])
            } else {
                keys.refuse_env_keys_with_recipients(&recipients.given())?;
                let (mut k, w) = keys.load()?;
                k.recipients = recipients.load()?;
                (k, w)
            };
            let mut plan = ExportPlan::new(&source, &bundle);
            plan.keys = keys;
            let mut warnings = warnings;
            if no_encrypt && sign_key.is_some() {
                return Err(Error::Usage(
                    "--no-encrypt conflicts with --sign-key (or FERRY_SIGN_KEY): readers refuse a \
                     plain bundle under --trust (no downgrade: a trust list expects an encrypted, \
                     signed bundle, docs/SECURITY.md), so the signature would never be checked; drop \
                     --no-encrypt to sign an encrypted bundle. Nothing written"
                        .into(),
                )
                .into());
            }
            if let Some(p) = &sign_key {
                let (k, w) = ferry::crypto::signing::SigningKey::load(p)?;
                plan.sign_key = Some(k);
                warnings.extend(w);
            }
            plan.encrypt = !no_encrypt;
            plan.selection = Selection { tables, exclude };
            plan.filters = ferry::export::parse_filters(
                &source,
                wheres
                    .iter()
                    .map(|w| split_pair(w, ':', "--where"))
                    .collect::<Result<_, _>>()?,
            )?;
            plan.batch = BatchLimits {
                // A part closes between batches: batches no larger than --max-part-rows keep
                // parts at it.
                rows: batch_rows
                    .unwrap_or(65_536 / jobs.clamp(1, 8))
                    .min(match usize::try_from(max_part_rows) {
                        Ok(0) | Err(_) => usize::MAX,
                        Ok(n) => n,
                    })
                    .max(1),
                ..BatchLimits::default()
            };
            let jobs = jobs.max(1);
            plan.row_group_rows = row_group_rows
                .unwrap_or(if jobs > 1 {
                    1_048_576 * 3 / (8 * jobs)
                } else {
                    1_048_576
                })
                .max(1);
            ferry::bundle::parts::zstd_level(zstd_level)?;
            plan.zstd_level = zstd_level;
            plan.max_part_bytes = max_part_size;
            plan.max_part_rows = max_part_rows;
            plan.jobs = jobs.max(1);
            if jobs > 1 && streams.is_some_and(|n| n > 1) {
                return Err(Error::Usage(
                    "--streams reads one table on several connections with --jobs 1; --jobs above 1 \
                     reads large tables as ranges already: give one of them"
                        .into(),
                ).into());
            }
            plan.streams = streams;
            plan.split_min_bytes = split_min_size;
            plan.source_options = SourceOptions { zero_dates };
            plan.source_id = source_id;
            plan.sequence = sequence;
            plan.dry_run = dry_run;
            plan.cursors = cursors
                .iter()
                .map(|c| split_pair(c, '=', "--cursor"))
                .collect::<Result<_, _>>()?;
            plan.since = since;
            plan.lookback = lookback;
            plan.deletes = deletes;
            plan.masks = masks;
            plan.mask_key = mask_key;
            plan.shards = shards;
            plan.coordinate = coordinate;
            plan.coordinate_timeout = coordinate_timeout;
            plan.shard = shard;
            let mut r = ferry::export::export(&plan, &progress)?;
            r.warnings.extend(mask_warnings);
            // A bundle written with a key carries a MAC that the key checks (a dry run
            // writes none; nor do a shard worker and the coordinator: `seal` writes it).
            // Authenticated for its readers when a secret slot (key file, passphrase) or a
            // signature backs it: age recipients are public.
            if !plan.dry_run && plan.shard.is_none() && !plan.coordinate {
                let secret_slot =
                    !plan.keys.key_files.is_empty() || !plan.keys.passphrases.is_empty();
                let signed = plan.sign_key.is_some();
                r.set_trust(!no_encrypt, !no_encrypt && (secret_slot || signed));
                if !no_encrypt && !secret_slot && !signed {
                    r.warnings.push(
                        "the bundle opens only with age identities and is not signed: an age \
                         recipient is public, so its receiver cannot tell who made it; sign it \
                         with --sign-key (the receiver then imports with --trust)"
                            .into(),
                    );
                }
            }
            r.warnings.extend(warnings);
            Ok(r)
        }
        Command::Import {
            bundle,
            target,
            keys,
            trust,
            mode,
            tables,
            exclude,
            rename,
            target_schema,
            strict,
            trust_expressions,
            dry_run,
            allow_replay,
            allow_unencrypted,
            as_text,
            jobs,
            streams,
            spool_dir,
            spool_limit,
            accept_gap,
            max_delete_ratio,
            replace_partial,
            separate_copy,
            on_error,
            max_errors,
            rejects,
        } => {
            ferry::engines::check_target_schema(&target, target_schema.as_deref())?;
            let (mut keys, warnings) = keys.load()?;
            keys.trust = trust.load()?;
            let mut plan = ImportPlan::new(&bundle, &target);
            plan.keys = keys;
            plan.mode = mode;
            plan.tables = tables;
            plan.exclude = exclude;
            plan.renames = rename
                .iter()
                .map(|r| split_pair(r, '=', "--rename"))
                .collect::<Result<_, _>>()?;
            plan.strict = strict;
            plan.trust_expressions = trust_expressions;
            plan.dry_run = dry_run;
            plan.allow_replay = allow_replay;
            plan.allow_unencrypted = allow_unencrypted;
            plan.target_schema = target_schema;
            plan.as_text = as_text;
            plan.jobs = jobs.max(1);
            plan.streams = streams.map(|n| n.max(1));
            plan.spool_dir = spool_dir;
            plan.spool_limit = spool_limit;
            plan.accept_gap = accept_gap;
            plan.max_delete_ratio = max_delete_ratio;
            plan.replace_partial = replace_partial;
            plan.separate_copy = separate_copy;
            plan.on_error = on_error;
            plan.max_errors = max_errors;
            plan.rejects = rejects;
            match ferry::import::import_reporting(&plan, &progress) {
                Ok(mut r) => {
                    r.warnings.extend(warnings);
                    Ok(r)
                }
                Err(mut f) => {
                    if let Some(r) = f.report.as_mut() {
                        r.warnings.extend(warnings);
                    }
                    Err(f)
                }
            }
        }
        Command::Verify {
            bundle,
            keys,
            trust,
            strict,
            ..
        } => {
            let (mut keys, warnings) = keys.load()?;
            keys.trust = trust.load()?;
            let mut r = ferry::verify::verify(&bundle, &keys, strict, &progress)?;
            r.warnings.extend(warnings);
            Ok(r)
        }
        Command::Status {
            target,
            target_schema,
        } => Ok(ferry::status(&target, target_schema.as_deref())?),
        Command::Gc {
            bundle,
            delete,
            older_than,
        } => Ok(ferry::gc::gc(&ferry::gc::GcPlan {
            bundle,
            delete,
            older_than,
        })?),
        Command::Plan {
            source,
            target,
            tables,
            exclude,
            wheres,
            exact,
            as_text,
            mask,
        } => {
            let (masks, mask_key, warnings) = mask.load()?;
            let req = ferry::plan::PlanRequest {
                filters: ferry::export::parse_filters(
                    &source,
                    wheres
                        .iter()
                        .map(|w| split_pair(w, ':', "--where"))
                        .collect::<Result<_, _>>()?,
                )?,
                source_url: source,
                target_url: target,
                selection: Selection { tables, exclude },
                exact,
                as_text,
                masks,
                mask_key,
                ..Default::default()
            };
            let mut r = ferry::plan::plan(&req, &progress)?;
            r.warnings.extend(warnings);
            Ok(r)
        }
        Command::Compare {
            a,
            b,
            keys,
            trust,
            tables,
            schema_a,
            schema_b,
            rename,
            show,
            allow_unencrypted,
        } => {
            let (mut keys, warnings) = keys.load()?;
            keys.trust = trust.load()?;
            let mut plan = ferry::compare::ComparePlan::new(&a, &b);
            plan.keys = keys;
            plan.tables = tables;
            plan.schema_a = schema_a;
            plan.schema_b = schema_b;
            plan.renames = rename
                .iter()
                .map(|r| split_pair(r, '=', "--rename"))
                .collect::<Result<_, _>>()?;
            plan.show = show;
            plan.allow_unencrypted = allow_unencrypted;
            let mut r = ferry::compare::compare(&plan, &progress)?;
            r.warnings.extend(warnings);
            Ok(r)
        }
        Command::Decrypt {
            bundle,
            dir,
            keys,
            trust,
            allow_unencrypted,
        } => {
            let (mut keys, warnings) = keys.load()?;
            keys.trust = trust.load()?;
            let mut r =
                ferry::decrypt::decrypt(&bundle, &dir, &keys, allow_unencrypted, &progress)?;
            r.warnings.extend(warnings);
            Ok(r)
        }
        Command::Seal {
            bundle,
            keys,
            sign_key,
        } => {
            let (keys, mut warnings) = keys.load()?;
            let sign_key = match &sign_key {
                Some(p) => {
                    let (k, w) = ferry::crypto::signing::SigningKey::load(p)?;
                    warnings.extend(w);
                    Some(k)
                }
                None => None,
            };
            let mut r = ferry::shard::seal(&bundle, &keys, sign_key.as_ref(), &progress)?;
            r.warnings.extend(warnings);
            Ok(r)
        }
        Command::Inspect { .. }
        | Command::Keygen { .. }
        | Command::Rekey { .. }
        | Command::Completions { .. }
        | Command::Man => {
            unreachable!("handled in main")
        }
    }
}

fn name_of(cmd: &Command) -> &'static str {
    match cmd {
        Command::Export { .. } => "export",
        Command::Plan { .. } => "plan",
        Command::Import { .. } => "import",
        Command::Verify { .. } => "verify",
        Command::Inspect { .. } => "inspect",
        Command::Compare { .. } => "compare",
        Command::Status { .. } => "status",
        Command::Gc { .. } => "gc",
        Command::Decrypt { .. } => "decrypt",
        Command::Keygen { .. } => "keygen",
        Command::Rekey { .. } => "rekey",
        Command::Seal { .. } => "seal",
        Command::Completions { .. } => "completions",
        Command::Man => "man",
    }
}

/// Writes to standard output; a reader that went away (`ferry … | head`) ends the output
/// quietly instead of a panic.
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Prints a failed command's error (and hint) on stderr, and with `--json` its summary on
/// stdout: `report` when the command made one (an import that committed parts before it
/// failed lists them), else one with the error alone.
fn fail(command: &str, e: &Error, json: bool, report: Option<Box<RunReport>>) -> ExitCode {
    let code = e.exit_code();
    // Errors quote bundle contents (file names, table names): no terminal escapes get through.
    say!(
        "ferry {command}: error: {}",
        ferry::report::printable_lines(&e.to_string())
    );
    if let Some(hint) = e.hint() {
        say!("hint: {}", hint.replace("COMMAND", command));
    }
    if json {
        let mut r = report.map_or_else(
            || {
                let mut r = RunReport::new(command);
                r.status = "failed".into();
                r.exit_code = code;
                r.message = e.to_string();
                if let Error::InvalidBundle { findings, .. } = e {
                    r.findings = findings.clone();
                }
                r
            },
            |r| *r,
        );
        r.hint = e.hint().map(|h| h.replace("COMMAND", command));
        emit(&format!("{}\n", r.to_json()));
    } else if let Some(mut r) = report {
        // What was committed before the failure; the error itself is on stderr already.
        r.message.clear();
        emit(&r.render());
    }
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match ferry::job::expand(&Cli::command(), args.clone()) {
        Ok(job) => {
            for w in &job.warnings {
                say!("ferry: warning: {}", ferry::report::printable_lines(w));
            }
            let from_file = job.args != args;
            match Cli::try_parse_from(job.args) {
                Ok(cli) => cli,
                Err(e) if from_file && e.use_stderr() => {
                    // A bad value may be the job file's: say where the options came from.
                    let _ = e.print();
                    let file = args
                        .iter()
                        .filter_map(|a| a.to_str())
                        .skip_while(|a| *a != "--config")
                        .nth(1)
                        .or_else(|| {
                            args.iter()
                                .filter_map(|a| a.to_str())
                                .find_map(|a| a.strip_prefix("--config="))
                        })
                        .unwrap_or("the job file");
                    say!(
                        "ferry: options not on the command line came from {} (--config): check its keys and values",
                        ferry::report::printable(file)
                    );
                    return ExitCode::from(2);
                }
                Err(e) => e.exit(),
            }
        }
        Err(e) => {
            let command = args
                .iter()
                .skip(1)
                .filter_map(|a| a.to_str())
                .find(|a| Cli::command().find_subcommand(a).is_some())
                .unwrap_or("");
            return fail(command, &e, args.iter().any(|a| a == "--json"), None);
        }
    };
    tracing_subscriber::fmt()
        // sqlx logs an unknown URL query parameter with its value (`sslpassword=…`): never shown.
        .with_env_filter(
            tracing_subscriber::EnvFilter::from_env("FERRY_LOG").add_directive(
                "sqlx_postgres::options=error"
                    .parse()
                    .expect("a valid directive"),
            ),
        )
        .with_writer(std::io::stderr)
        .init();
    let out = cli.out.clone();
    let name = name_of(&cli.command);
    match cli.command {
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ferry", &mut buf);
            emit(&String::from_utf8_lossy(&buf));
            ExitCode::SUCCESS
        }
        Command::Man => {
            let mut buf = Vec::new();
            match clap_mangen::Man::new(Cli::command()).render(&mut buf) {
                Ok(()) => {
                    emit(&String::from_utf8_lossy(&buf));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(
                    name,
                    &Error::io("rendering the man page", e),
                    out.json,
                    None,
                ),
            }
        }
        Command::Keygen {
            signing: Some(path),
            ..
        } => match ferry::crypto::signing::SigningKey::generate(&path) {
            Ok(k) => {
                let pub_file = format!("{}.pub", path.display());
                if out.json {
                    emit(&format!(
                        "{}\n",
                        serde_json::json!({
                            "signing_key_file": path,
                            "public_key_file": pub_file,
                            "public_key": k.public_key(),
                            "key_id": k.key_id(),
                        })
                    ));
                } else {
                    emit(&format!("{}\n", k.public_key()));
                    if !out.quiet {
                        say!(
                            "wrote {} (mode 0600, unencrypted: keep it secret) and {pub_file}; key id {}. \
                             Receivers trust it with --trust {} (or --trust-file {pub_file}); \
                             minisign checks a bundle with: minisign -Vm manifest.json -P {}",
                            path.display(),
                            k.key_id(),
                            k.public_key(),
                            k.public_key()
                        );
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(name, &e, out.json, None),
        },
        Command::Keygen {
            key_file: Some(key_file),
            age: true,
            ..
        } => match AgeIdentity::generate(&key_file) {
            Ok(id) => {
                if out.json {
                    emit(&format!(
                        "{}\n",
                        serde_json::json!({
                            "identity_file": key_file,
                            "recipient": id.recipient().text(),
                            "key_id": id.id(),
                        })
                    ));
                } else {
                    emit(&format!("{}\n", id.recipient().text()));
                    if !out.quiet {
                        say!(
                            "wrote {} (mode 0600), key id {}; give the recipient above to senders \
                             (export --recipient), keep the file secret and keep a copy: without it the \
                             bundles made for it cannot be read",
                            key_file.display(),
                            id.id()
                        );
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(name, &e, out.json, None),
        },
        Command::Keygen {
            key_file: Some(key_file),
            ..
        } => match KeyFileKey::generate(&key_file) {
            Ok(k) => {
                if out.json {
                    emit(&format!(
                        "{}\n",
                        serde_json::json!({ "key_file": key_file, "key_id": k.id() })
                    ));
                } else {
                    emit(&format!("{}\n", k.id()));
                    if !out.quiet {
                        say!(
                            "wrote {} (mode 0600); keep it secret and keep a copy: without it the bundles cannot be read",
                            key_file.display()
                        );
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(name, &e, out.json, None),
        },
        Command::Keygen { .. } => unreachable!("clap requires KEY_FILE or --signing"),
        Command::Inspect {
            bundle,
            keys,
            trust,
        } => {
            let res = keys.load().and_then(|(mut k, _)| {
                k.trust = trust.load()?;
                ferry::inspect::inspect(&bundle, &k)
            });
            match res {
                Ok(i) => {
                    if out.json {
                        emit(&format!(
                            "{}\n",
                            serde_json::to_string_pretty(&i).expect("serialises")
                        ));
                    } else {
                        emit(&i.render());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(name, &e, out.json, None),
            }
        }
        Command::Rekey {
            bundle,
            keys,
            add_key_files,
            add_passphrase_env,
            remove_slots,
            add_recipients,
            add_recipients_files,
            sign_key,
            trust,
            sign_unverified,
            drop_signature,
        } => {
            let progress = if out.quiet {
                Progress::hidden()
            } else {
                Progress::new(false)
            };
            let add = KeyArgs {
                key_files: add_key_files,
                passphrase_env: add_passphrase_env,
                ..Default::default()
            };
            let recipients = RecipientArgs {
                recipients: add_recipients,
                recipients_files: add_recipients_files,
            };
            let res = keys.load().and_then(|(mut keys, mut warnings)| {
                keys.trust = trust.load()?;
                let (mut add, w) = add.load()?;
                warnings.extend(w);
                add.recipients = recipients.load()?;
                let sign_key = match &sign_key {
                    Some(p) => {
                        let (k, w) = ferry::crypto::signing::SigningKey::load(p)?;
                        warnings.extend(w);
                        Some(k)
                    }
                    None => None,
                };
                let plan = ferry::rekey::RekeyPlan {
                    bundle_url: bundle,
                    keys,
                    add,
                    remove: remove_slots,
                    sign_key,
                    sign_unverified,
                    drop_signature,
                };
                let mut r = ferry::rekey::rekey(plan, &progress)?;
                r.warnings.extend(warnings);
                Ok(r)
            });
            match res {
                Ok(r) => {
                    if out.json {
                        emit(&format!(
                            "{}\n",
                            serde_json::to_string_pretty(&r).expect("serialises")
                        ));
                    } else {
                        emit(&r.render());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(name, &e, out.json, None),
            }
        }
        cmd => match run(cmd, &out) {
            Ok(r) => {
                if out.json {
                    emit(&format!("{}\n", r.to_json()));
                } else {
                    emit(&r.render());
                }
                ExitCode::from(u8::try_from(r.exit_code).unwrap_or(1))
            }
            Err(f) => fail(name, &f.error, out.json, f.report),
        },
    }
}
