//! Job files: a command's options kept in a TOML file (`--config FILE`), so a staged
//! migration is a reviewed file in version control and each stage is one short command.
//!
//! The file is turned into command-line arguments before clap parses them, through clap's
//! own description of the command ([`clap::Command`]): nothing here knows an option by
//! name, so a new option (or a new command) is a job-file key without a change here.
//!
//! The file's shape (README, "Job files"):
//! - a table per command, named as the command: `[export]`, `[import]`, `[compare]`,
//!   `[plan]`, …; each key is an option's long name (`table`, `max-part-size`, with `_` for
//!   `-` accepted) or a positional argument's name (`source`, `bundle`, `target`);
//! - keys outside any table are shared: they apply to every command that has that option
//!   (`key-file` for export and import alike), and a command's own table overrides them;
//! - a table inside a command's table is a stage (`[export.start]`, `[export.link]`),
//!   chosen with `--stage NAME`: its keys add to and override the command's own;
//! - a string, number or boolean is one value; an array is a repeatable option given once
//!   per element; `true` turns a flag on (`false` leaves it off);
//! - the command line wins: an option given there replaces the file's value (for a
//!   repeatable option, its whole list). Positional arguments given on the command line
//!   fill those the file leaves out, in order; when the command line gives all of them,
//!   it replaces the file's;
//! - relative paths are relative to the file's directory: options that take a path,
//!   bundle locations, and `sqlite://`/`file://` URLs.
//!
//! An unknown key or table is a usage error naming the key, the file and the valid keys.
//! Nothing in a job file is a secret: keys are given as key files and passphrases as the
//! names of environment variables, as on the command line; a database URL that holds a
//! password gets a warning.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::builder::ValueHint;
use clap::{Arg, ArgAction, Command};

use crate::{Error, Result};

/// The option that names a job file.
pub const OPTION: &str = "config";
/// The option that chooses a stage of a job file.
pub const STAGE: &str = "stage";

/// The arguments to parse, and what the operator should know about the job file.
#[derive(Debug, Default)]
pub struct Expanded {
    pub args: Vec<OsString>,
    pub warnings: Vec<String>,
}

/// Arguments clap handles itself, never from a file.
const RESERVED: &[&str] = &["help", "version", OPTION, STAGE];

/// Reads the job file named by `--config FILE` in `args`, if any, and returns `args` with
/// the file's options added where the command line does not give them. Without
/// `--config`, or when the command line is not one clap would accept, `args` come back
/// unchanged (clap then reports what is wrong).
pub fn expand(cli: &Command, args: Vec<OsString>) -> Result<Expanded> {
    let mut cli = cli.clone();
    // Global options (`--json`, `--config`) become arguments of every subcommand.
    cli.build();
    let Some(line) = CommandLine::scan(&cli, &args) else {
        return Ok(Expanded {
            args,
            warnings: vec![],
        });
    };
    let Some(file) = line.config.clone() else {
        return Ok(Expanded {
            args,
            warnings: vec![],
        });
    };
    let sub = cli
        .find_subcommand(&line.command)
        .expect("scan found the subcommand");
    let text = std::fs::read_to_string(&file).map_err(|e| {
        Error::Usage(format!(
            "--config {}: cannot read the job file: {e}",
            file.display()
        ))
    })?;
    // The parser's own text quotes the offending line, which may hold a database password:
    // only its message and where, never the line.
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e
            .span()
            .map(|r| {
                let before = text.get(..r.start).unwrap_or(&text);
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" at line {line}, column {column}")
            })
            .unwrap_or_default();
        Error::Usage(format!(
            "--config {}: not a valid TOML job file{at}: {} (the line is not repeated here, in \
             case it holds a password)",
            file.display(),
            crate::report::printable(e.message().trim_end())
        ))
    })?;
    let base = std::path::absolute(&file)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let job = Job {
        file: &file,
        base: &base,
    };
    let keys = job.keys_for(&cli, &line.command, line.stage.as_deref(), &doc)?;
    let mut warnings = Vec::new();
    let mut options: Vec<OsString> = Vec::new();
    let mut from_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, (section, value)) in &keys {
        let arg = find_arg(sub, key).ok_or_else(|| job.unknown_key(sub, section, key))?;
        let mut values = job.values(arg, section, key, value)?;
        for v in &mut values {
            *v = job.resolve(arg, v);
            if let Some(w) = password_warning(&file, section, key, v) {
                warnings.push(w);
            }
        }
        if arg.is_positional() {
            from_file.insert(arg.get_id().to_string(), values);
            continue;
        }
        if line.given.contains(arg.get_id().as_str()) {
            continue;
        }
        let long = arg.get_long().expect("a named option has a long name");
        match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => {
                if values.first().is_some_and(|v| v == "true") {
                    options.push(format!("--{long}").into());
                }
            }
            _ => options.extend(
                values
                    .iter()
                    .map(|v| OsString::from(format!("--{long}={v}"))),
            ),
        }
    }
    let positionals = job.positionals(sub, &line, &from_file)?;
    // A required positional neither the file nor the command line gives: said here, naming
    // the file and where the key would go, instead of clap's bare "not provided".
    let mut required: Vec<&Arg> = sub
        .get_positionals()
        .filter(|a| a.is_required_set())
        .collect();
    required.sort_by_key(|a| a.get_index());
    if let Some(missing) = required.get(positionals.len()) {
        let tables: Vec<String> = doc
            .iter()
            .filter(|(_, v)| v.is_table())
            .map(|(k, _)| format!("[{k}]"))
            .collect();
        let others = if tables.is_empty() {
            String::new()
        } else {
            format!(
                " (it has {}: a table's keys apply to its own command only)",
                tables.join(", ")
            )
        };
        return Err(Error::Usage(format!(
            "{} needs `{}`: give it on the command line, or as `{}` at the top of job file {} or in \
             its [{}] table{others}",
            sub.get_name(),
            missing.get_id(),
            missing.get_id(),
            file.display(),
            line.command
        )));
    }
    let mut out: Vec<OsString> = args[..=line.command_at].to_vec();
    out.extend(
        args.iter()
            .enumerate()
            .skip(line.command_at + 1)
            .filter(|(i, _)| !line.positional_at.contains(i) && Some(*i) != line.end_of_options)
            .map(|(_, a)| a.clone()),
    );
    out.extend(options);
    if !positionals.is_empty() {
        out.push("--".into());
        out.extend(positionals);
    }
    Ok(Expanded {
        args: out,
        warnings,
    })
}

/// What the command line itself gives, read with clap's description of the command.
#[derive(Debug)]
struct CommandLine {
    /// The subcommand's name and its index in the arguments.
    command: String,
    command_at: usize,
    /// Ids of the options given after the subcommand (or before it, for global ones).
    given: BTreeSet<String>,
    /// Positional values, in order, with their indices.
    positional_at: Vec<usize>,
    positionals: Vec<OsString>,
    /// The index of a bare `--`.
    end_of_options: Option<usize>,
    config: Option<PathBuf>,
    stage: Option<String>,
}

impl CommandLine {
    /// `None` when there is no subcommand clap knows, or help is asked for.
    fn scan(cli: &Command, args: &[OsString]) -> Option<CommandLine> {
        let mut given = BTreeSet::new();
        let mut config = None;
        let mut stage = None;
        let mut i = 1;
        // Options before the subcommand (the root's, global ones).
        let command_at = loop {
            let a = args.get(i)?.to_str()?;
            if a == "--" {
                return None;
            }
            match option_at(cli, args, i) {
                Some(Opt::Found { id, value, next }) => {
                    if id == OPTION {
                        config = value.map(PathBuf::from);
                    } else if id == STAGE {
                        stage = value.and_then(|v| v.into_string().ok());
                    }
                    given.insert(id);
                    i = next;
                }
                Some(Opt::Unknown) => return None,
                None => break i,
            }
        };
        let command = args[command_at].to_str()?.to_string();
        let sub = cli.find_subcommand(&command)?;
        if sub.get_name() != command {
            return None;
        }
        let mut line = CommandLine {
            command,
            command_at,
            given,
            positional_at: vec![],
            positionals: vec![],
            end_of_options: None,
            config,
            stage,
        };
        let mut i = command_at + 1;
        while i < args.len() {
            if line.end_of_options.is_some() {
                line.positional_at.push(i);
                line.positionals.push(args[i].clone());
                i += 1;
                continue;
            }
            if args[i] == "--" {
                line.end_of_options = Some(i);
                i += 1;
                continue;
            }
            match option_at(sub, args, i) {
                Some(Opt::Found { id, value, next }) => {
                    if RESERVED[..2].contains(&id.as_str()) {
                        return None;
                    }
                    if id == OPTION {
                        line.config = value.map(PathBuf::from);
                    } else if id == STAGE {
                        line.stage = value.and_then(|v| v.into_string().ok());
                    }
                    line.given.insert(id);
                    i = next;
                }
                Some(Opt::Unknown) => return None,
                None => {
                    line.positional_at.push(i);
                    line.positionals.push(args[i].clone());
                    i += 1;
                }
            }
        }
        Some(line)
    }
}

enum Opt {
    /// An option of `cmd`: its id, its value (for one that takes a value) and the index
    /// after it.
    Found {
        id: String,
        value: Option<OsString>,
        next: usize,
    },
    /// Looks like an option, but `cmd` has none of that name (clap will say so).
    Unknown,
}

/// The option at `args[i]`, or `None` when `args[i]` is not an option (a positional value
/// or the subcommand).
fn option_at(cmd: &Command, args: &[OsString], i: usize) -> Option<Opt> {
    let a = args[i].to_str()?;
    if let Some(long) = a.strip_prefix("--") {
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n, Some(OsString::from(v))),
            None => (long, None),
        };
        let Some(arg) = cmd.get_arguments().find(|x| {
            x.get_long() == Some(name) || x.get_all_aliases().is_some_and(|al| al.contains(&name))
        }) else {
            return Some(Opt::Unknown);
        };
        return Some(found(arg, args, i, inline));
    }
    if a.len() > 1 && a.starts_with('-') {
        // A cluster of short flags (`-q`), the last one possibly taking a value.
        let flags = &a[1..];
        for (at, c) in flags.char_indices() {
            let Some(arg) = cmd.get_arguments().find(|x| x.get_short() == Some(c)) else {
                return Some(Opt::Unknown);
            };
            let rest = &flags[at + c.len_utf8()..];
            if takes_value(arg) {
                let inline =
                    (!rest.is_empty()).then(|| OsString::from(rest.trim_start_matches('=')));
                return Some(found(arg, args, i, inline));
            }
            if rest.is_empty() {
                return Some(found(arg, args, i, None));
            }
        }
    }
    None
}

fn found(arg: &Arg, args: &[OsString], i: usize, inline: Option<OsString>) -> Opt {
    let id = arg.get_id().to_string();
    if !takes_value(arg) {
        return Opt::Found {
            id,
            value: None,
            next: i + 1,
        };
    }
    match inline {
        Some(v) => Opt::Found {
            id,
            value: Some(v),
            next: i + 1,
        },
        None => Opt::Found {
            id,
            value: args.get(i + 1).cloned(),
            next: i + 2,
        },
    }
}

fn takes_value(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Set | ArgAction::Append)
}

/// A key as the file spells it, compared with `_` and `-` alike.
fn normal(key: &str) -> String {
    key.replace('_', "-")
}

/// The name a job file uses for an argument: its long name, or a positional's id.
fn key_of(arg: &Arg) -> Option<String> {
    if RESERVED.contains(&arg.get_id().as_str()) || arg.is_hide_set() {
        return None;
    }
    if arg.is_positional() {
        return Some(normal(arg.get_id().as_str()));
    }
    arg.get_long().map(normal)
}

fn find_arg<'a>(cmd: &'a Command, key: &str) -> Option<&'a Arg> {
    cmd.get_arguments()
        .find(|a| key_of(a).as_deref() == Some(key))
}

/// The keys that apply to one command: (normalised key) → (where the file gives it, as
/// `[export]`, `[export.link]` or "the top level", and its value).
type Keys<'v> = BTreeMap<String, (String, &'v toml::Value)>;

const TOP: &str = "the top level";

struct Job<'a> {
    file: &'a Path,
    /// The file's directory: where its relative paths start.
    base: &'a Path,
}

impl Job<'_> {
    fn keys_for<'v>(
        &self,
        cli: &Command,
        command: &str,
        stage: Option<&str>,
        doc: &'v toml::Table,
    ) -> Result<Keys<'v>> {
        let commands: Vec<&str> = cli
            .get_subcommands()
            .filter(|s| s.get_name() != "help")
            .map(Command::get_name)
            .collect();
        let mut shared: Keys<'v> = BTreeMap::new();
        let mut own: Keys<'v> = BTreeMap::new();
        let mut staged: Keys<'v> = BTreeMap::new();
        let mut stages: BTreeSet<&str> = BTreeSet::new();
        for (k, v) in doc {
            let toml::Value::Table(t) = v else {
                let n = normal(k);
                if !cli.get_subcommands().any(|s| find_arg(s, &n).is_some()) {
                    return Err(Error::Usage(format!(
                        "job file {}: unknown key {k:?} at the top level: keys outside a table apply \
                         to every command that has such an option, and no command has this one",
                        self.file.display()
                    )));
                }
                if shared.insert(n, (TOP.into(), v)).is_some() {
                    return Err(self.twice(TOP, k));
                }
                continue;
            };
            if !commands.contains(&k.as_str()) {
                return Err(Error::Usage(format!(
                    "job file {}: [{k}] is not a command; its tables are named after the commands: {}",
                    self.file.display(),
                    commands
                        .iter()
                        .map(|c| format!("[{c}]"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let sub = cli.find_subcommand(k).expect("a listed command");
            // Every table is checked, not only this run's: a typo in [import] is found by
            // the export that runs first.
            let take = |section: String, t: &'v toml::Table, into: Option<&mut Keys<'v>>| {
                let mut into = into;
                for (key, value) in t {
                    let n = normal(key);
                    if find_arg(sub, &n).is_none() {
                        return Err(self.unknown_key(sub, &section, key));
                    }
                    if let Some(keys) = into.as_deref_mut()
                        && keys.insert(n, (section.clone(), value)).is_some()
                    {
                        return Err(self.twice(&section, key));
                    }
                }
                Ok(())
            };
            let inner: Vec<(&String, &'v toml::Table)> = t
                .iter()
                .filter_map(|(key, v)| v.as_table().map(|st| (key, st)))
                .collect();
            // Plain keys of the command's table.
            for (key, value) in t.iter().filter(|(_, v)| !v.is_table()) {
                let n = normal(key);
                let section = format!("[{k}]");
                if find_arg(sub, &n).is_none() {
                    return Err(self.unknown_key(sub, &section, key));
                }
                if k == command && own.insert(n, (section.clone(), value)).is_some() {
                    return Err(self.twice(&section, key));
                }
            }
            for (name, st) in inner {
                stages.insert(name.as_str());
                let section = format!("[{k}.{name}]");
                let this = k == command && stage == Some(name.as_str());
                take(section, st, this.then_some(&mut staged))?;
            }
        }
        if let Some(s) = stage
            && !stages.contains(s)
        {
            return Err(Error::Usage(format!(
                "--stage {s}: job file {} has no stage of that name ({})",
                self.file.display(),
                if stages.is_empty() {
                    "it has none: a stage is a table inside a command's, as [export.link]"
                        .to_string()
                } else {
                    format!(
                        "its stages: {}",
                        stages.iter().copied().collect::<Vec<_>>().join(", ")
                    )
                }
            )));
        }
        let sub = cli.find_subcommand(command).expect("the run's command");
        shared.retain(|k, _| find_arg(sub, k).is_some());
        shared.extend(own);
        shared.extend(staged);
        Ok(shared)
    }

    fn unknown_key(&self, sub: &Command, section: &str, key: &str) -> Error {
        let valid: Vec<String> = sub.get_arguments().filter_map(key_of).collect();
        Error::Usage(format!(
            "job file {}: unknown key {key:?} in {section}; {} takes: {}",
            self.file.display(),
            sub.get_name(),
            valid.join(", ")
        ))
    }

    fn twice(&self, section: &str, key: &str) -> Error {
        Error::Usage(format!(
            "job file {}: {key:?} is given twice in {section} (as `-` and `_` spellings of one key)",
            self.file.display()
        ))
    }

    /// The values a key gives, as the command line would spell them.
    fn values(&self, arg: &Arg, section: &str, key: &str, v: &toml::Value) -> Result<Vec<String>> {
        let place = || format!("job file {}, {section} key {key:?}", self.file.display());
        let flag = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        if flag {
            return match v {
                toml::Value::Boolean(b) => Ok(vec![b.to_string()]),
                _ => Err(Error::Usage(format!(
                    "{}: a flag, give true or false",
                    place()
                ))),
            };
        }
        let many = matches!(arg.get_action(), ArgAction::Append)
            || arg.get_num_args().is_some_and(|n| n.max_values() > 1);
        let scalar = |v: &toml::Value| -> Result<String> {
            match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                toml::Value::Float(f) => Ok(f.to_string()),
                toml::Value::Boolean(b) => Ok(b.to_string()),
                toml::Value::Datetime(d) => Ok(d.to_string()),
                toml::Value::Array(_) | toml::Value::Table(_) => Err(Error::Usage(format!(
                    "{}: give a string or a number{}",
                    place(),
                    if many { " (or a list of them)" } else { "" }
                ))),
            }
        };
        match v {
            toml::Value::Array(items) if many => items.iter().map(scalar).collect(),
            toml::Value::Array(_) => Err(Error::Usage(format!(
                "{}: takes one value, not a list",
                place()
            ))),
            other => Ok(vec![scalar(other)?]),
        }
    }

    /// A value made absolute against the file's directory when it is a relative local path:
    /// for options that take a path, bundle locations, and `sqlite://`/`sqlite:`/`file://` URLs.
    fn resolve(&self, arg: &Arg, v: &str) -> String {
        let join = |p: &str| -> String {
            if p.is_empty() || Path::new(p).is_absolute() || p.starts_with(':') {
                p.to_string()
            } else {
                self.base.join(p).display().to_string()
            }
        };
        // `sqlite:PATH` (no slashes) is accepted everywhere a `sqlite://PATH` is.
        for scheme in ["sqlite://", "file://", "sqlite:"] {
            if let Some(rest) = v.strip_prefix(scheme) {
                return format!("{scheme}{}", join(rest));
            }
        }
        let is_path = arg.get_value_parser().type_id() == std::any::TypeId::of::<PathBuf>()
            || matches!(
                arg.get_value_hint(),
                ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath
            );
        if is_path && !v.contains("://") {
            join(v)
        } else {
            v.to_string()
        }
    }

    /// The positional arguments in order: the command line's fill those the file leaves
    /// out; when it gives all of them it replaces the file's.
    fn positionals(
        &self,
        sub: &Command,
        line: &CommandLine,
        from_file: &BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<OsString>> {
        let mut slots: Vec<&Arg> = sub.get_positionals().collect();
        slots.sort_by_key(|a| a.get_index());
        let cli = &line.positionals;
        if from_file.is_empty() || cli.len() >= slots.len() {
            return Ok(cli.clone());
        }
        let names = |v: &[&Arg]| {
            v.iter()
                .map(|a| format!("`{}`", a.get_id()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let missing: Vec<&Arg> = slots
            .iter()
            .copied()
            .filter(|a| !from_file.contains_key(a.get_id().as_str()))
            .collect();
        let mut out = Vec::new();
        let mut next = cli.iter();
        for (n, slot) in slots.iter().enumerate() {
            if let Some(v) = from_file.get(slot.get_id().as_str()) {
                out.extend(v.iter().map(OsString::from));
                continue;
            }
            match next.next() {
                Some(v) => out.push(v.clone()),
                None => {
                    // Left for clap to report as missing, unless the file gives a later
                    // one (which would then land in this one's place).
                    if let Some(later) = slots[n..]
                        .iter()
                        .find(|a| from_file.contains_key(a.get_id().as_str()))
                    {
                        return Err(Error::Usage(format!(
                            "{} needs `{}` before `{}` (given in job file {}): give it on the \
                             command line or in the file",
                            sub.get_name(),
                            slot.get_id(),
                            later.get_id(),
                            self.file.display()
                        )));
                    }
                    break;
                }
            }
        }
        if next.next().is_some() {
            return Err(Error::Usage(format!(
                "{} takes {}; job file {} gives {}, so the command line may give {} (the ones the \
                 file leaves out, in order) or all {}; it gives {}",
                sub.get_name(),
                names(&slots),
                self.file.display(),
                names(
                    &slots
                        .iter()
                        .copied()
                        .filter(|a| from_file.contains_key(a.get_id().as_str()))
                        .collect::<Vec<_>>()
                ),
                if missing.is_empty() {
                    "none".to_string()
                } else {
                    names(&missing)
                },
                slots.len(),
                cli.len()
            )));
        }
        Ok(out)
    }
}

/// A warning when a job file's value is a URL with a password in it: a job file is meant
/// for version control.
fn password_warning(file: &Path, section: &str, key: &str, v: &str) -> Option<String> {
    let u = url::Url::parse(v).ok()?;
    u.password()?;
    Some(format!(
        "job file {}, {section} key {key:?}: the URL holds a password; a job file is meant for \
         version control, so keep secrets out of it (PostgreSQL reads PGPASSWORD from the \
         environment)",
        file.display(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand};

    #[derive(Parser, Debug)]
    struct Cli {
        #[arg(long, global = true)]
        json: bool,
        #[arg(long, global = true, value_name = "FILE")]
        config: Option<PathBuf>,
        #[arg(long, global = true)]
        stage: Option<String>,
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Subcommand, Debug, PartialEq)]
    enum Cmd {
        Export {
            source: String,
            #[arg(value_hint = ValueHint::AnyPath)]
            bundle: String,
            #[arg(long = "table")]
            tables: Vec<String>,
            #[arg(long = "key-file")]
            key_files: Vec<PathBuf>,
            #[arg(long)]
            no_encrypt: bool,
            #[arg(long, default_value_t = 1)]
            jobs: usize,
            #[arg(long = "where")]
            wheres: Vec<String>,
        },
        Import {
            bundle: String,
            target: String,
            #[arg(long)]
            mode: Option<String>,
        },
    }

    fn run(file: &str, line: &[&str]) -> Result<(Cmd, Vec<String>)> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("job.toml");
        std::fs::write(&f, file).unwrap();
        let mut args: Vec<OsString> = vec!["ferry".into()];
        for a in line {
            args.push(a.replace("JOB", f.to_str().unwrap()).into());
        }
        use clap::CommandFactory;
        let e = expand(&Cli::command(), args)?;
        let cli = Cli::try_parse_from(&e.args).map_err(|e| Error::Usage(e.to_string()))?;
        let base = dir.path().canonicalize().unwrap();
        // Paths come back absolute under the file's directory; tests compare them relative.
        let strip = |s: String| {
            s.replace(&format!("{}/", base.display()), "DIR/")
                .replace(&format!("{}/", dir.path().display()), "DIR/")
        };
        let cmd = match cli.cmd {
            Cmd::Export {
                source,
                bundle,
                tables,
                key_files,
                no_encrypt,
                jobs,
                wheres,
            } => Cmd::Export {
                source: strip(source),
                bundle: strip(bundle),
                tables,
                key_files: key_files
                    .into_iter()
                    .map(|p| PathBuf::from(strip(p.display().to_string())))
                    .collect(),
                no_encrypt,
                jobs,
                wheres,
            },
            Cmd::Import {
                bundle,
                target,
                mode,
            } => Cmd::Import {
                bundle: strip(bundle),
                target: strip(target),
                mode,
            },
        };
        Ok((cmd, e.warnings))
    }

    fn export(source: &str, bundle: &str) -> Cmd {
        Cmd::Export {
            source: source.into(),
            bundle: bundle.into(),
            tables: vec![],
            key_files: vec![],
            no_encrypt: false,
            jobs: 1,
            wheres: vec![],
        }
    }

    #[test]
    fn a_table_becomes_options_and_the_command_line_wins() {
        let file = r#"
            key_file = "k.key"
            [export]
            source = "sqlite://src.db"
            table = ["a", "b"]
            where = ["a:id > 3"]
            no-encrypt = false
            jobs = 4
            [import]
            target = "postgres://h/db"
            mode = "upsert"
        "#;
        let (cmd, _) = run(file, &["export", "--config", "JOB", "out"]).unwrap();
        let Cmd::Export {
            tables,
            jobs,
            key_files,
            wheres,
            no_encrypt,
            source,
            bundle,
        } = cmd
        else {
            panic!()
        };
        assert_eq!(tables, ["a", "b"]);
        assert_eq!(wheres, ["a:id > 3"]);
        assert_eq!(jobs, 4);
        assert!(!no_encrypt);
        assert_eq!(key_files, [PathBuf::from("DIR/k.key")]);
        assert_eq!(source, "sqlite://DIR/src.db");
        // Given on the command line: relative to the current directory, as ever.
        assert_eq!(bundle, "out");
        // A repeatable option on the command line replaces the file's list.
        let (cmd, _) = run(
            file,
            &[
                "--config", "JOB", "export", "--table", "c", "--jobs=2", "out",
            ],
        )
        .unwrap();
        let Cmd::Export { tables, jobs, .. } = cmd else {
            panic!()
        };
        assert_eq!((tables, jobs), (vec!["c".to_string()], 2));
    }

    #[test]
    fn positionals_fill_in_order() {
        let file = "[import]\ntarget = \"sqlite://t.db\"\n";
        let (cmd, _) = run(file, &["import", "b1", "--config", "JOB"]).unwrap();
        assert_eq!(
            cmd,
            Cmd::Import {
                bundle: "b1".into(),
                target: "sqlite://DIR/t.db".into(),
                mode: None
            }
        );
        // `sqlite:PATH` is relative to the file's directory like `sqlite://PATH`.
        let short = "[import]\ntarget = \"sqlite:t.db\"\n";
        let (cmd, _) = run(short, &["import", "b1", "--config", "JOB"]).unwrap();
        assert_eq!(
            cmd,
            Cmd::Import {
                bundle: "b1".into(),
                target: "sqlite:DIR/t.db".into(),
                mode: None
            }
        );
        // All of them on the command line: the file's are replaced.
        let (cmd, _) = run(file, &["import", "b1", "sqlite://x.db", "--config", "JOB"]).unwrap();
        assert_eq!(
            cmd,
            Cmd::Import {
                bundle: "b1".into(),
                target: "sqlite://x.db".into(),
                mode: None
            }
        );
        // The file gives both, the command line one: ambiguous, refused.
        let both = "[export]\nsource = \"sqlite://s.db\"\nbundle = \"b\"\n";
        let e = run(both, &["export", "--config", "JOB", "b2"]).unwrap_err();
        assert!(e.to_string().contains("`source`, `bundle`"), "{e}");
        let (cmd, _) = run(both, &["export", "--config", "JOB"]).unwrap();
        assert_eq!(cmd, export("sqlite://DIR/s.db", "DIR/b"));
        // A later one from the file with an earlier one missing is refused, not misplaced.
        let e = run("[export]\nbundle = \"b\"\n", &["export", "--config", "JOB"]).unwrap_err();
        assert!(
            e.to_string().contains("needs `source` before `bundle`"),
            "{e}"
        );
    }

    #[test]
    fn a_positional_neither_file_nor_line_gives_is_named_with_the_file() {
        let e = run("[import]\nmode = \"x\"\n", &["export", "--config", "JOB"]).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("export needs `source`")
                && m.contains("job.toml or in its [export] table")
                && m.contains("it has [import]"),
            "{m}"
        );
        assert_eq!(e.exit_code(), 2);
        // One of two given on the line: the second is named.
        let e = run("", &["export", "--config", "JOB", "s"]).unwrap_err();
        assert!(e.to_string().contains("export needs `bundle`"), "{e}");
        // All given: no error.
        assert!(run("", &["export", "--config", "JOB", "s", "b"]).is_ok());
    }

    #[test]
    fn unknown_keys_and_tables_are_usage_errors_naming_them() {
        let e = run(
            "[export]\ntabel = [\"a\"]\n",
            &["export", "--config", "JOB", "s", "b"],
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("unknown key \"tabel\" in [export]") && m.contains("job.toml"),
            "{m}"
        );
        assert!(m.contains("table, ") && m.contains("source"), "{m}");
        assert_eq!(e.exit_code(), 2);
        // A typo in another command's table is found too.
        let e = run(
            "[import]\nmod = \"x\"\n",
            &["export", "--config", "JOB", "s", "b"],
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"mod\" in [import]"), "{e}");
        let e = run("[exprt]\n", &["export", "--config", "JOB", "s", "b"]).unwrap_err();
        assert!(e.to_string().contains("[exprt] is not a command"), "{e}");
        let e = run("nope = 1\n", &["export", "--config", "JOB", "s", "b"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown key \"nope\" at the top level"),
            "{e}"
        );
        let e = run(
            "[export]\njobs = [1, 2]\n",
            &["export", "--config", "JOB", "s", "b"],
        )
        .unwrap_err();
        assert!(e.to_string().contains("takes one value"), "{e}");
        let e = run(
            "[export]\nno_encrypt = \"yes\"\n",
            &["export", "--config", "JOB", "s", "b"],
        )
        .unwrap_err();
        assert!(e.to_string().contains("give true or false"), "{e}");
        let e = run("[export\n", &["export", "--config", "JOB", "s", "b"]).unwrap_err();
        assert!(e.to_string().contains("not a valid TOML job file"), "{e}");
        // `config` itself is no key.
        let e = run("config = \"x\"\n", &["export", "--config", "JOB", "s", "b"]).unwrap_err();
        assert!(e.to_string().contains("\"config\""), "{e}");
    }

    #[test]
    fn flags_shared_keys_and_passwords() {
        let file = "no_encrypt = true\n[import]\ntarget = \"postgres://u:secret@h/db\"\n";
        let (cmd, w) = run(file, &["export", "--config", "JOB", "s", "b"]).unwrap();
        let Cmd::Export { no_encrypt, .. } = cmd else {
            panic!()
        };
        assert!(no_encrypt);
        assert!(w.is_empty(), "{w:?}");
        let (_, w) = run(file, &["import", "--config", "JOB", "b"]).unwrap();
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("password") && !w[0].contains("u:secret"),
            "{w:?}"
        );
    }

    #[test]
    fn a_stage_adds_to_its_command_table() {
        let file = "[export]\nsource = \"s\"\ntable = [\"a\"]\n[export.start]\njobs = 3\n\
                    [export.link]\njobs = 5\ntable = [\"b\"]\n";
        let jobs_tables = |line: &[&str]| match run(file, line).unwrap().0 {
            Cmd::Export { jobs, tables, .. } => (jobs, tables.join(",")),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            jobs_tables(&["export", "--config", "JOB", "b"]),
            (1, "a".into())
        );
        assert_eq!(
            jobs_tables(&["export", "--config", "JOB", "--stage", "start", "b"]),
            (3, "a".into())
        );
        assert_eq!(
            jobs_tables(&["--stage=link", "export", "--config", "JOB", "b"]),
            (5, "b".into())
        );
        let e = run(file, &["export", "--config", "JOB", "--stage", "lnk", "b"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("no stage of that name (its stages: link, start)"),
            "{e}"
        );
        let e = run(
            "[export.link]\njbos = 1\n",
            &["export", "--config", "JOB", "s", "b"],
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"jbos\" in [export.link]"), "{e}");
    }

    #[test]
    fn without_config_nothing_changes() {
        let (cmd, _) = run("", &["export", "s", "b"]).unwrap();
        assert_eq!(cmd, export("s", "b"));
        // After `--`, a value that looks like an option is a positional.
        let (cmd, _) = run(
            "[export]\nsource = \"s\"\n",
            &["export", "--config", "JOB", "--", "-b"],
        )
        .unwrap();
        assert_eq!(cmd, export("s", "-b"));
    }
}
