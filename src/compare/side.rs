//! One side of a compare: a database, read through its engine's reader inside one snapshot,
//! or a bundle, read only once it has passed the same verification as `import` and
//! `decrypt` (every file hashed and authenticated, the catalog read, every part's row count
//! checked). Either gives table definitions and canonical Arrow batches.

use arrow::record_batch::RecordBatch;

use crate::bundle::check::{Checked, OpenBundle};
use crate::crypto::keys::Keys;
use crate::report::Progress;
use crate::source::{self, BatchLimits, Selection, Source};
use crate::types::TableDef;
use crate::{Error, Result};

/// Whether a compare argument names a database (by its scheme: `sqlite://`, `postgres://`,
/// `mysql://`, `mariadb://`, as everywhere in ferry) rather than a bundle.
pub fn is_database(url: &str) -> bool {
    crate::engines::for_url(url).is_ok()
}

/// What a bundle side is, for the report.
#[derive(Debug, Clone)]
pub struct BundleInfo {
    pub location: String,
    pub id: String,
    pub encrypted: bool,
    /// The kind of slot that opened it (`None`: a plain bundle).
    pub opened_by: Option<crate::crypto::envelope::Opener>,
    pub signature: crate::crypto::signing::SignatureCheck,
    pub fingerprint: String,
}

enum Reader {
    Db(Box<dyn Source>),
    Bundle(Box<Checked>),
}

/// One side, opened, with its tables listed.
pub struct Side {
    /// The URL without secrets, for messages.
    pub label: String,
    /// Tables live in schemas (PostgreSQL, or a bundle exported from it).
    pub schemas: bool,
    pub tables: Vec<TableDef>,
    /// A database's views that are not compared (views are read only when named).
    pub views: Vec<TableDef>,
    pub warnings: Vec<String>,
    pub bundle: Option<BundleInfo>,
    reader: Reader,
}

/// How a side is opened: the tables to list, and the key options for a bundle.
pub struct Open<'a> {
    pub selection: &'a Selection,
    pub keys: &'a Keys,
    pub allow_unencrypted: bool,
    pub progress: &'a Progress,
}

impl Side {
    pub fn open(url: &str, how: &Open<'_>) -> Result<Side> {
        if is_database(url) {
            Side::database(url, how)
        } else {
            Side::bundle(url, how)
        }
    }

    fn database(url: &str, how: &Open<'_>) -> Result<Side> {
        let label = crate::redact::display_url(url);
        how.progress.line(&format!("fingerprinting {label}"));
        let engine = crate::engines::for_url(url)?;
        let mut src = crate::engines::open_source(url, Default::default())?;
        src.begin_snapshot()?;
        let tables = src.tables(how.selection)?;
        let views = src
            .list()?
            .into_iter()
            .filter(|v| {
                v.from_view
                    && !tables
                        .iter()
                        .any(|t| t.schema == v.schema && t.name == v.name)
            })
            .collect();
        Ok(Side {
            label,
            schemas: engine.schemas,
            tables,
            views,
            warnings: vec![],
            bundle: None,
            reader: Reader::Db(src),
        })
    }

    fn bundle(url: &str, how: &Open<'_>) -> Result<Side> {
        let label = crate::redact::display_location(url);
        how.progress.line(&format!("verifying {label}"));
        let bundle = OpenBundle::open(url, false)?;
        bundle.refuse_downgrade(how.keys, Some(how.allow_unencrypted))?;
        let mut warnings = bundle.warnings();
        let encrypted = bundle.manifest.encrypted();
        if !encrypted {
            warnings.push(format!(
                "bundle {label} is NOT encrypted (accepted with --allow-unencrypted): no MAC, so anyone \
                 who could write the bundle could have made it"
            ));
        }
        let total: u64 = bundle.manifest.files().map(|f| f.size).sum();
        let bar = how.progress.bar("verifying", Some(total), true);
        let signature = bundle.check_signature(how.keys)?;
        let fingerprint = bundle.fingerprint();
        let unlocked = bundle.unlock(how.keys)?;
        let opened_by = unlocked.opened_by();
        let scan = bundle.scan_all(Some(unlocked), &|f| bar.inc(f.size));
        bar.finish_and_clear();
        let checked = bundle.verified(scan)?;
        how.progress.line(&format!("fingerprinting {label}"));
        let catalog = &checked.catalog;
        let schemas = crate::engines::by_name(&catalog.source.engine).map_or_else(
            || catalog.tables.iter().any(|t| t.table.schema.is_some()),
            |e| e.schemas,
        );
        let mut tables = Vec::new();
        for t in catalog
            .tables
            .iter()
            .filter(|t| how.selection.wants(&t.table))
        {
            if t.partial {
                warnings.push(format!(
                    "table {} of bundle {label} holds part of the table's rows (exported with --where, \
                     or a link of a chain): it differs from the whole table",
                    t.table.qualified()
                ));
            }
            tables.push(t.table.clone());
        }
        let info = BundleInfo {
            location: label.clone(),
            id: checked.bundle.manifest.bundle_id.clone(),
            encrypted,
            opened_by,
            signature,
            fingerprint,
        };
        Ok(Side {
            label,
            schemas,
            tables,
            views: vec![],
            warnings,
            bundle: Some(info),
            reader: Reader::Bundle(Box::new(checked)),
        })
    }

    /// Streams table `t`: `start` makes the accumulator for the definition the rows come
    /// with, `add` takes each batch. A database reads the table again (same snapshot) when a
    /// column turns out to need another type ([`source::read_retyping`]): `start` is then
    /// called again. Returns the accumulator, the definition read and notes on retyping.
    pub fn read<A>(
        &mut self,
        t: &TableDef,
        mut start: impl FnMut(&TableDef) -> Result<A>,
        mut add: impl FnMut(&mut A, &RecordBatch) -> Result<()>,
    ) -> Result<(A, TableDef, Vec<String>)> {
        match &mut self.reader {
            Reader::Db(src) => source::read_retyping(src.as_mut(), t, |src, def| {
                let mut acc = start(def)?;
                src.read(def, None, BatchLimits::default(), &mut |b| {
                    add(&mut acc, &b)
                })?;
                Ok(acc)
            }),
            Reader::Bundle(checked) => {
                let ct = checked
                    .catalog
                    .tables
                    .iter()
                    .find(|c| c.table.schema == t.schema && c.table.name == t.name)
                    .ok_or_else(|| {
                        Error::Other(format!("table {} is not in the bundle", t.qualified()))
                    })?;
                let mut acc = start(&ct.table)?;
                let mut parts: Vec<_> = ct.parts.iter().collect();
                parts.sort_by_key(|p| p.index);
                let url = checked.bundle.url();
                for p in parts {
                    let label = format!("table {} part {}", ct.table.qualified(), p.index);
                    let (_, batches) =
                        checked.part_reader(&p.path)?.batches(url, &label, 65_536)?;
                    for b in batches {
                        add(&mut acc, &b?)?;
                    }
                }
                Ok((acc, ct.table.clone(), vec![]))
            }
        }
    }
}
