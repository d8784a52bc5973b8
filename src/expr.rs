//! SQL expressions that come from outside ferry's own code: a bundle's catalog (domain
//! defaults and CHECKs, written by the source database or by whoever holds the key) and the
//! operator's `--where`. None is ever sent as the text it came as: each is parsed by
//! `sqlparser` in the engine's dialect as exactly one expression, checked against what may
//! be replayed, and printed back from its syntax tree, so what reaches a server is what was
//! checked. docs/EXPRESSIONS.md lists what a catalog expression may hold.
//!
//! This module knows no connection: whether a cast's type exists on the target is the
//! loader's question (it asks the server with a bound parameter).

use sqlparser::ast::{
    BinaryOperator, CastKind, ColumnOption, DataType, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, GeneratedExpressionMode, InTarget, ObjectNamePart, Statement,
    TableConstraint, UnaryOperator, Value,
};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

/// Functions a catalog expression may call: pure or time/identity functions with no side
/// effect on the server. Anything else is not replayed.
pub const FUNCTIONS: &[&str] = &[
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtimestamp",
    "localtime",
    "statement_timestamp",
    "transaction_timestamp",
    "clock_timestamp",
    "gen_random_uuid",
    "lower",
    "upper",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "btrim",
    "ltrim",
    "rtrim",
    "trim",
    "abs",
    "round",
    "trunc",
    "floor",
    "ceil",
    "ceiling",
    "mod",
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "left",
    "right",
    "substr",
    "substring",
    "replace",
    "concat",
    "date_trunc",
    "array_length",
    "cardinality",
];

/// Functions a SQLite catalog expression may call besides [`FUNCTIONS`]: SQLite's own
/// pure (or time) functions its CHECKs, defaults and generated columns commonly use. Only
/// in SQLite's dialect: another engine may resolve these names to a user's function.
pub const SQLITE_FUNCTIONS: &[&str] = &[
    "typeof",
    "ifnull",
    "iif",
    "instr",
    "hex",
    "unicode",
    "json_valid",
    "date",
    "time",
    "datetime",
    "julianday",
    "unixepoch",
    "strftime",
];

/// The SQL dialect an expression is written in (each engine names its own in the registry,
/// `engines::Engine::sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    MySql,
    Sqlite,
}

impl Engine {
    fn dialect(self) -> Box<dyn Dialect> {
        match self {
            Engine::Postgres => Box::new(PostgreSqlDialect {}),
            Engine::MySql => Box::new(MySqlDialect {}),
            Engine::Sqlite => Box::new(SQLiteDialect {}),
        }
    }
}

/// What a catalog expression may name besides literals and allowed functions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// Columns of the table it belongs to.
    pub columns: &'a [String],
    /// `VALUE` (a domain constraint).
    pub value: bool,
    /// `import --trust-expressions` on a bundle signed by a trusted key: a function outside
    /// the allowlist may be called (by its plain or `pg_catalog.` name; still no aggregate,
    /// window or subquery, and the expression is still rebuilt from its tree).
    pub any_function: bool,
}

/// A catalog expression that may be replayed: its text as printed from the checked tree,
/// and the type names its casts name (the loader checks that each resolves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub sql: String,
    pub cast_types: Vec<String>,
}

/// Nesting deeper than this is not followed (a hostile expression could be deep).
const MAX_DEPTH: usize = 64;

/// Longest expression text ferry parses, and most tokens: a long operator chain makes a
/// tree as deep as it is long, and only its length can be bounded before parsing.
const MAX_TEXT: usize = 64 << 10;
const MAX_TOKENS: usize = 8192;

/// Parses `text` as exactly one expression in `engine`'s dialect.
fn parse_one(text: &str, engine: Engine) -> Result<Expr, String> {
    if text.len() > MAX_TEXT {
        return Err(format!("is longer than {} KiB", MAX_TEXT >> 10));
    }
    let dialect = engine.dialect();
    let count = sqlparser::tokenizer::Tokenizer::new(dialect.as_ref(), text)
        .tokenize()
        .map_err(|e| format!("does not parse ({e})"))?
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .count();
    if count > MAX_TOKENS {
        return Err(format!("has more than {MAX_TOKENS} tokens"));
    }
    let mut p = Parser::new(dialect.as_ref())
        .try_with_sql(text)
        .map_err(|e| format!("does not parse ({e})"))?;
    let expr = p
        .parse_expr()
        .map_err(|e| format!("does not parse ({e})"))?;
    if p.peek_token().token != Token::EOF {
        return Err("is more than one expression".into());
    }
    Ok(expr)
}

/// The SQL text of a checked tree, proven to parse back into the same tree. sqlparser's
/// printer is not exact for every literal (a `'` after a backslash is not doubled), and
/// text that would mean something else to the server than what was checked is refused
/// rather than sent.
fn print(expr: &Expr, engine: Engine) -> Result<String, String> {
    let sql = expr.to_string();
    match parse_one(&sql, engine) {
        Ok(back) if back == *expr => Ok(sql),
        _ => Err(
            "does not print back as the same expression (a literal ferry cannot quote faithfully)"
                .into(),
        ),
    }
}

/// A catalog expression, checked against the allowlist and printed back; `Err` says why
/// it is not replayed (for the summary: "CHECK on d calls lo_export").
pub fn rebuild(text: &str, engine: Engine, scope: Scope<'_>) -> Result<Checked, String> {
    let expr = parse_one(text, engine)?;
    let mut cast_types = Vec::new();
    check(&expr, scope, engine, &mut cast_types, 0)?;
    Ok(Checked {
        sql: print(&expr, engine)?,
        cast_types,
    })
}

/// `CHECK (expr)` as `pg_get_constraintdef` prints a domain's or table's constraint, maybe
/// followed by `NOT VALID`: rebuilt as `CHECK (checked expr)[ NOT VALID]`.
pub fn rebuild_check(text: &str, engine: Engine, scope: Scope<'_>) -> Result<Checked, String> {
    let t = text.trim();
    let (body, not_valid) = match t.strip_suffix("NOT VALID") {
        Some(b) => (b.trim_end(), true),
        None => (t, false),
    };
    let inner = body
        .strip_prefix("CHECK")
        .map(str::trim_start)
        .ok_or_else(|| "is not a CHECK constraint".to_string())?;
    let expr = parse_one(inner, engine)?;
    let mut cast_types = Vec::new();
    check(&expr, scope, engine, &mut cast_types, 0)?;
    // `CHECK ((x))` prints its own parentheses around the expression's.
    let body = match &expr {
        Expr::Nested(x) => print(x, engine)?,
        other => print(other, engine)?,
    };
    Ok(Checked {
        sql: format!(
            "CHECK ({body}){}",
            if not_valid { " NOT VALID" } else { "" }
        ),
        cast_types,
    })
}

/// An expression of one engine's catalog (a CHECK) for another engine's: carried only when
/// it holds nothing whose meaning could differ between the two (column references,
/// literals, comparison, arithmetic, AND/OR/NOT, IN, BETWEEN, LIKE, IS NULL, CASE): no
/// function, cast or engine-specific operator. Identifiers are quoted the target's way,
/// then the result goes through [`rebuild`] in the target's dialect like any other
/// catalog expression. `Err` says why it is not carried.
pub fn translate(
    text: &str,
    from: Engine,
    to: Engine,
    scope: Scope<'_>,
) -> Result<Checked, String> {
    if from == to {
        return rebuild(text, to, scope);
    }
    if text.len() > MAX_TEXT {
        return Err(format!("is longer than {} KiB", MAX_TEXT >> 10));
    }
    const WORDS: &[&str] = &[
        "AND", "OR", "NOT", "IN", "IS", "NULL", "TRUE", "FALSE", "BETWEEN", "LIKE", "CASE", "WHEN",
        "THEN", "ELSE", "END",
    ];
    let toks = sqlparser::tokenizer::Tokenizer::new(from.dialect().as_ref(), text)
        .tokenize()
        .map_err(|e| format!("does not parse ({e})"))?;
    let next_solid = |i: usize| {
        toks[i + 1..]
            .iter()
            .find(|t| !matches!(t, Token::Whitespace(_)))
    };
    let mut out = String::new();
    for (i, t) in toks.iter().enumerate() {
        match t {
            Token::Whitespace(_) => out.push(' '),
            Token::Word(w)
                if w.quote_style.is_none()
                    && WORDS.iter().any(|k| w.value.eq_ignore_ascii_case(k)) =>
            {
                out.push_str(&w.value.to_ascii_uppercase());
            }
            Token::Word(w) => {
                if w.quote_style.is_some_and(|q| q != '"' && q != '`') {
                    return Err(format!("holds a name ferry does not translate ({t})"));
                }
                if next_solid(i) == Some(&Token::LParen) {
                    return Err(format!(
                        "calls {}, which ferry does not translate between engines",
                        w.value
                    ));
                }
                out.push_str(&match to {
                    Engine::MySql => format!("`{}`", w.value.replace('`', "``")),
                    Engine::Postgres | Engine::Sqlite => quote_ident(&w.value),
                });
            }
            Token::Number(n, false) => out.push_str(n),
            Token::SingleQuotedString(v) => {
                if to == Engine::MySql && v.contains('\\') {
                    return Err(
                        "holds a backslash in a literal, which MySQL reads differently".into(),
                    );
                }
                out.push_str(&quote_literal(v));
            }
            Token::Eq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::LParen
            | Token::RParen
            | Token::Comma => out.push_str(&t.to_string()),
            Token::EOF => {}
            other => {
                return Err(format!(
                    "uses {other}, which ferry does not translate between engines"
                ));
            }
        }
    }
    rebuild(out.trim(), to, scope)
}

/// One CHECK of a `CREATE TABLE` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredCheck {
    /// The constraint's name, when the statement gives one.
    pub name: Option<String>,
    /// The column it is written on (a column constraint), if any.
    pub column: Option<String>,
    /// Its expression printed from the tree (still to pass [`rebuild`]), or why it cannot be.
    pub expr: Result<String, String>,
}

/// One generated column of a `CREATE TABLE` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredGenerated {
    pub column: String,
    /// Its expression printed from the tree (still to pass [`rebuild`]), or why it cannot be.
    pub expr: Result<String, String>,
    /// STORED; false: VIRTUAL (SQLite's default).
    pub stored: bool,
}

/// What a table's own `CREATE TABLE` text (SQLite keeps it in `sqlite_master`) declares as
/// expressions: its CHECKs, of the table and of its columns, and its generated columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclaredExprs {
    pub checks: Vec<DeclaredCheck>,
    pub generated: Vec<DeclaredGenerated>,
}

/// Longest `CREATE TABLE` text ferry parses.
const MAX_STATEMENT: usize = 1 << 20;

/// Parses `text` as exactly one `CREATE TABLE` statement in `engine`'s dialect and returns
/// its CHECK and generation expressions, each printed from its tree (and proven to parse
/// back into it). Nothing here is replayed as it is: each expression still goes through
/// [`rebuild`] with the table's columns in scope. `Err` says why the statement is not read.
pub fn declared_exprs(text: &str, engine: Engine) -> Result<DeclaredExprs, String> {
    if text.len() > MAX_STATEMENT {
        return Err(format!("is longer than {} KiB", MAX_STATEMENT >> 10));
    }
    let dialect = engine.dialect();
    let statements = Parser::new(dialect.as_ref())
        .try_with_sql(text)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| format!("does not parse ({e})"))?;
    let [Statement::CreateTable(ct)] = statements.as_slice() else {
        return Err("is not one CREATE TABLE statement".into());
    };
    let mut out = DeclaredExprs::default();
    for col in &ct.columns {
        for o in &col.options {
            match &o.option {
                ColumnOption::Check(c) => out.checks.push(DeclaredCheck {
                    name: o.name.as_ref().or(c.name.as_ref()).map(|n| n.value.clone()),
                    column: Some(col.name.value.clone()),
                    expr: print(&c.expr, engine),
                }),
                ColumnOption::Generated {
                    generation_expr: Some(e),
                    generation_expr_mode,
                    ..
                } => out.generated.push(DeclaredGenerated {
                    column: col.name.value.clone(),
                    expr: print(e, engine),
                    stored: matches!(generation_expr_mode, Some(GeneratedExpressionMode::Stored)),
                }),
                _ => {}
            }
        }
    }
    for c in &ct.constraints {
        if let TableConstraint::Check(c) = c {
            out.checks.push(DeclaredCheck {
                name: c.name.as_ref().map(|n| n.value.clone()),
                column: None,
                expr: print(&c.expr, engine),
            });
        }
    }
    Ok(out)
}

/// Whether an expression of `engine`'s SQL names `column` (a word or quoted identifier
/// equal to it; unquoted words ignore case). Text that does not tokenize counts as naming
/// it: callers use this to drop what a masked column would break, so doubt drops.
pub fn mentions(text: &str, engine: Engine, column: &str) -> bool {
    match sqlparser::tokenizer::Tokenizer::new(engine.dialect().as_ref(), text).tokenize() {
        Ok(tokens) => tokens.iter().any(|t| match t {
            Token::Word(w) if w.quote_style.is_some() => w.value == column,
            Token::Word(w) => w.value.eq_ignore_ascii_case(column),
            _ => false,
        }),
        Err(_) => true,
    }
}

/// The operator's `--where`: one boolean expression of any kind (the operator may read
/// what they like), never a statement or a second one; printed back from its tree.
pub fn rebuild_where(text: &str, engine: Engine) -> Result<String, String> {
    let sql = print(&parse_one(text, engine)?, engine)?;
    // A dollar quote whose tag starts with a digit (`$1$…$1$`) is a parameter and another
    // quote to PostgreSQL: the server would not read what was checked.
    let odd_tag = sqlparser::tokenizer::Tokenizer::new(engine.dialect().as_ref(), &sql)
        .tokenize()
        .map_err(|e| format!("does not parse ({e})"))?
        .iter()
        .any(|t| {
            matches!(t, Token::DollarQuotedString(d)
                if d.tag.as_deref().is_some_and(|g| !g.starts_with(|c: char| c.is_alphabetic() || c == '_')))
        });
    if odd_tag {
        return Err("holds a dollar quote whose tag is not a name".into());
    }
    Ok(sql)
}

fn check(
    e: &Expr,
    s: Scope<'_>,
    engine: Engine,
    casts: &mut Vec<String>,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("nests more than {MAX_DEPTH} levels"));
    }
    let d = depth + 1;
    let mut sub = |x: &Expr| check(x, s, engine, casts, d);
    match e {
        Expr::Identifier(id) => {
            let name = &id.value;
            // SQLite's names ignore (ASCII) case, quoted or not.
            let ok =
                s.columns.iter().any(|c| {
                    c == name || (engine == Engine::Sqlite && c.eq_ignore_ascii_case(name))
                }) || (s.value && id.quote_style.is_none() && name.eq_ignore_ascii_case("value"));
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "names {name:?}, which is not a column of its table"
                ))
            }
        }
        Expr::Value(v) => match &v.value {
            Value::Number(..) | Value::SingleQuotedString(_) | Value::Boolean(_) | Value::Null => {
                Ok(())
            }
            other => Err(format!("holds a literal ferry does not replay ({other})")),
        },
        Expr::Nested(x)
        | Expr::IsNull(x)
        | Expr::IsNotNull(x)
        | Expr::IsTrue(x)
        | Expr::IsNotTrue(x)
        | Expr::IsFalse(x)
        | Expr::IsNotFalse(x)
        | Expr::IsUnknown(x)
        | Expr::IsNotUnknown(x) => sub(x),
        Expr::UnaryOp { op, expr } => {
            if !matches!(
                op,
                UnaryOperator::Plus | UnaryOperator::Minus | UnaryOperator::Not
            ) {
                return Err(format!("uses the operator {op}"));
            }
            sub(expr)
        }
        Expr::BinaryOp { left, op, right } => {
            operator(op)?;
            sub(left)?;
            sub(right)
        }
        Expr::IsDistinctFrom(left, right) | Expr::IsNotDistinctFrom(left, right) => {
            sub(left)?;
            sub(right)
        }
        Expr::AnyOp {
            left,
            compare_op,
            right,
            ..
        }
        | Expr::AllOp {
            left,
            compare_op,
            right,
        } => {
            operator(compare_op)?;
            sub(left)?;
            sub(right)
        }
        Expr::Between {
            expr, low, high, ..
        } => {
            sub(expr)?;
            sub(low)?;
            sub(high)
        }
        Expr::In {
            expr,
            target: InTarget::List(list),
            ..
        } => {
            sub(expr)?;
            list.iter().try_for_each(sub)
        }
        Expr::Like {
            expr,
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            expr,
            pattern,
            escape_char,
            ..
        }
        | Expr::SimilarTo {
            expr,
            pattern,
            escape_char,
            ..
        } => {
            sub(expr)?;
            sub(pattern)?;
            escape_char.as_deref().map_or(Ok(()), sub)
        }
        Expr::Array(a) => a.elem.iter().try_for_each(sub),
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            if let Some(o) = operand {
                sub(o)?;
            }
            for w in conditions {
                sub(&w.condition)?;
                sub(&w.result)?;
            }
            else_result.as_deref().map_or(Ok(()), sub)
        }
        Expr::Cast {
            kind: CastKind::Cast | CastKind::DoubleColon,
            expr,
            data_type,
            format: None,
        } => {
            sub(expr)?;
            cast_type(data_type, casts)
        }
        Expr::TypedString(t) => {
            if !matches!(t.value.value, Value::SingleQuotedString(_)) {
                return Err("holds a typed literal ferry does not replay".into());
            }
            cast_type(&t.data_type, casts)
        }
        Expr::Function(f) => {
            // An unquoted name folds to lower case; a quoted one is that exact name
            // (`"LOWER"` is another function than `lower`).
            let folded = |p: &ObjectNamePart| {
                p.as_ident().map(|i| {
                    if i.quote_style.is_some() {
                        i.value.clone()
                    } else {
                        i.value.to_ascii_lowercase()
                    }
                })
            };
            let name = match f.name.0.as_slice() {
                [n] => folded(n),
                [schema, n] if folded(schema).as_deref() == Some("pg_catalog") => folded(n),
                _ => None,
            };
            let allowed = |n: &str| {
                s.any_function
                    || FUNCTIONS.contains(&n)
                    || (engine == Engine::Sqlite && SQLITE_FUNCTIONS.contains(&n))
            };
            if !name.is_some_and(|n| allowed(&n)) {
                return Err(format!("calls {}", f.name));
            }
            if f.filter.is_some()
                || f.over.is_some()
                || !f.within_group.is_empty()
                || f.null_treatment.is_some()
                || !matches!(f.parameters, FunctionArguments::None)
            {
                return Err(format!("calls {} as an aggregate or window", f.name));
            }
            match &f.args {
                FunctionArguments::None => Ok(()),
                FunctionArguments::Subquery(_) => Err("holds a subquery".into()),
                FunctionArguments::List(l) => {
                    if l.duplicate_treatment.is_some() || !l.clauses.is_empty() {
                        return Err(format!("calls {} with clauses", f.name));
                    }
                    for a in &l.args {
                        match a {
                            FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => sub(x)?,
                            _ => return Err(format!("calls {} with named arguments", f.name)),
                        }
                    }
                    Ok(())
                }
            }
        }
        Expr::Subquery(_) | Expr::Exists { .. } => Err("holds a subquery".into()),
        other => Err(format!(
            "holds an expression ferry does not replay ({})",
            short(&other.to_string())
        )),
    }
}

/// Operators a rebuilt expression may use: arithmetic, comparison, logic, concatenation and
/// regular-expression matching. Others (`OPERATOR(schema.op)`, custom operators) call
/// functions the allowlist does not name.
fn operator(op: &BinaryOperator) -> Result<(), String> {
    use BinaryOperator as B;
    match op {
        B::Plus
        | B::Minus
        | B::Multiply
        | B::Divide
        | B::Modulo
        | B::StringConcat
        | B::Gt
        | B::Lt
        | B::GtEq
        | B::LtEq
        | B::Eq
        | B::NotEq
        | B::And
        | B::Or
        | B::PGRegexMatch
        | B::PGRegexIMatch
        | B::PGRegexNotMatch
        | B::PGRegexNotIMatch => Ok(()),
        other => Err(format!("uses the operator {other}")),
    }
}

/// A cast's type: printed from the tree, and only the shapes a type name has (names,
/// quotes, dots, spaces, numeric modifiers, brackets). The loader asks the target whether
/// it resolves.
fn cast_type(t: &DataType, casts: &mut Vec<String>) -> Result<(), String> {
    let s = t.to_string();
    let shape_ok = !s.is_empty()
        && s.len() <= 200
        && s.chars().all(|c| {
            c.is_alphanumeric() || matches!(c, '_' | ' ' | '.' | '"' | '(' | ')' | ',' | '[' | ']')
        });
    if !shape_ok {
        return Err(format!(
            "casts to {}, which ferry does not replay",
            short(&s)
        ));
    }
    if !casts.contains(&s) {
        casts.push(s);
    }
    Ok(())
}

fn short(s: &str) -> String {
    let mut t: String = s.chars().take(60).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}

/// The tokens of `text`, without whitespace.
fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let dialect = PostgreSqlDialect {};
    let toks = sqlparser::tokenizer::Tokenizer::new(&dialect, text)
        .tokenize()
        .map_err(|e| format!("does not parse ({e})"))?;
    Ok(toks
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect())
}

/// A column default from another engine's catalog, as `to` writes it for a column of type
/// `ty`, when it means the same there: a number for a numeric column, a string for a text
/// column, true/false (or MySQL's 1/0) for a boolean, the current timestamp
/// (`CURRENT_TIMESTAMP`, `now()`, `current_timestamp(6)`) for a timestamp. Anything else
/// does not travel across engines (`None`). The text is parsed in `to`'s dialect and printed from the tree:
/// a literal whose quoting differs between the two dialects fails to parse or to print back.
pub fn portable_default(text: &str, to: Engine, ty: &crate::types::ColumnType) -> Option<String> {
    use crate::types::ColumnType as T;
    let e = parse_one(text, to).ok()?;
    let number = |e: &Expr| match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(n.clone()),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => Some(format!("-{n}")),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    };
    let numeric = ty.is_integer()
        || matches!(
            ty,
            T::Float32 | T::Float64 | T::Decimal128 { .. } | T::Decimal256 { .. } | T::NumericText
        );
    match (&e, ty) {
        // MySQL's BOOLEAN is an integer: its 0 and 1 are false and true elsewhere.
        (_, T::Boolean) => match (number(&e).as_deref(), &e) {
            (Some("0"), _) => Some("false".into()),
            (Some("1"), _) => Some("true".into()),
            (_, Expr::Value(v)) if matches!(v.value, Value::Boolean(_)) => print(&e, to).ok(),
            _ => None,
        },
        _ if numeric => number(&e).and_then(|_| print(&e, to).ok()),
        (Expr::Value(v), T::Utf8) if matches!(v.value, Value::SingleQuotedString(_)) => {
            print(&e, to).ok()
        }
        (_, T::Timestamp { .. } | T::Date32) => {
            let now = match &e {
                Expr::Function(f) => {
                    let n = f.name.to_string().to_ascii_lowercase();
                    n == "now" || n == "current_timestamp" || n == "localtimestamp"
                }
                Expr::Identifier(i) => i.value.eq_ignore_ascii_case("current_timestamp"),
                _ => false,
            };
            (now && matches!(ty, T::Timestamp { .. })).then(|| {
                match to {
                    // DATETIME(6) columns take the current time with the same precision.
                    Engine::MySql => "CURRENT_TIMESTAMP(6)",
                    Engine::Postgres | Engine::Sqlite => "CURRENT_TIMESTAMP",
                }
                .to_string()
            })
        }
        _ => None,
    }
}

/// A chain's cursor bound: `column >= literal` (`OR column IS NULL` when the column may be
/// NULL: such rows travel in every link) printed from its tree,
/// refused unless the text parses back to exactly that shape with exactly `bound` as its
/// value (a mark read from the source is data, and must stay one literal).
pub fn cursor_bound(
    engine: Engine,
    column: &str,
    bound: &str,
    integer: bool,
    nullable: bool,
) -> Result<String, String> {
    let literal = if integer {
        let n: i128 = bound
            .parse()
            .map_err(|_| format!("{bound:?} is not an integer"))?;
        n.to_string()
    } else {
        quote_literal(bound)
    };
    let col = quote_ident_in(engine, column);
    let text = if nullable {
        format!("{col} >= {literal} OR {col} IS NULL")
    } else {
        format!("{col} >= {literal}")
    };
    let expr = parse_one(&text, engine)?;
    let same_column = |e: &Expr| matches!(e, Expr::Identifier(i) if i.value == column);
    let comparison = |e: &Expr| match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::GtEq,
            right,
        } => {
            same_column(left)
                && match right.as_ref() {
                    Expr::Value(v) => match &v.value {
                        Value::Number(n, _) => integer && *n == literal,
                        Value::SingleQuotedString(s) => !integer && s == bound,
                        _ => false,
                    },
                    // A negative integer (a count lookback below the first id, or negative
                    // keys) parses as a minus applied to its digits.
                    Expr::UnaryOp {
                        op: UnaryOperator::Minus,
                        expr,
                    } => {
                        integer
                            && matches!(expr.as_ref(), Expr::Value(v)
                                if matches!(&v.value, Value::Number(n, _) if format!("-{n}") == literal))
                    }
                    _ => false,
                }
        }
        _ => false,
    };
    let ok = match &expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } if nullable => {
            comparison(left) && matches!(right.as_ref(), Expr::IsNull(x) if same_column(x))
        }
        e => !nullable && comparison(e),
    };
    if !ok {
        return Err(format!(
            "{bound:?} does not stay one literal in a predicate"
        ));
    }
    print(&expr, engine)
}

/// `'…'` with quotes doubled (the session's standard_conforming_strings is on).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// An identifier quoted in `engine`'s dialect (backticks for MySQL, double quotes otherwise).
pub fn quote_ident_in(engine: Engine, s: &str) -> String {
    match engine {
        Engine::MySql => format!("`{}`", s.replace('`', "``")),
        Engine::Postgres | Engine::Sqlite => quote_ident(s),
    }
}

/// `"…"` with quotes doubled.
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn is_word(t: &Token, w: &str) -> bool {
    matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w))
}

/// One constant of a partition bound, printed by ferry.
fn bound_literal(t: &Token, bounds: bool) -> Result<String, String> {
    match t {
        Token::SingleQuotedString(s) => Ok(quote_literal(s)),
        Token::Number(n, false)
            if !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')) =>
        {
            Ok(n.clone())
        }
        Token::Word(w) if w.quote_style.is_none() => {
            let u = w.value.to_ascii_uppercase();
            match u.as_str() {
                "NULL" | "TRUE" | "FALSE" => Ok(u),
                "MINVALUE" | "MAXVALUE" if bounds => Ok(u),
                _ => Err(format!("holds {} where a constant belongs", w.value)),
            }
        }
        other => Err(format!("holds {other} where a constant belongs")),
    }
}

/// A parenthesised list of constants starting at `toks[i]` (which must be `(`); returns
/// the printed list and the index after `)`.
fn literal_list(toks: &[Token], mut i: usize, bounds: bool) -> Result<(String, usize), String> {
    if toks.get(i) != Some(&Token::LParen) {
        return Err("is not a partition bound".into());
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        let t = toks.get(i).ok_or("ends early")?;
        // A negative number comes as '-' then the number.
        if *t == Token::Minus {
            let n = toks.get(i + 1).ok_or("ends early")?;
            out.push(format!("-{}", bound_literal(n, false)?));
            i += 2;
        } else {
            out.push(bound_literal(t, bounds)?);
            i += 1;
        }
        match toks.get(i) {
            Some(Token::Comma) => i += 1,
            Some(Token::RParen) => return Ok((format!("({})", out.join(", ")), i + 1)),
            _ => return Err("is not a partition bound".into()),
        }
    }
}

/// A partition bound as `pg_get_expr(relpartbound, …)` prints it — `DEFAULT`,
/// `FOR VALUES IN (…)`, `FOR VALUES FROM (…) TO (…)`, `FOR VALUES WITH (modulus m,
/// remainder r)` — rebuilt from its constants; anything else is refused with why.
pub fn partition_bound(text: &str) -> Result<String, String> {
    let toks = tokens(text)?;
    let t = |i: usize| toks.get(i);
    if toks.len() == 1 && is_word(&toks[0], "DEFAULT") {
        return Ok("DEFAULT".into());
    }
    if !(t(0).is_some_and(|x| is_word(x, "FOR")) && t(1).is_some_and(|x| is_word(x, "VALUES"))) {
        return Err("is not a partition bound".into());
    }
    let (sql, end) = match t(2) {
        Some(x) if is_word(x, "IN") => {
            let (l, e) = literal_list(&toks, 3, false)?;
            (format!("FOR VALUES IN {l}"), e)
        }
        Some(x) if is_word(x, "FROM") => {
            let (from, e) = literal_list(&toks, 3, true)?;
            if !t(e).is_some_and(|x| is_word(x, "TO")) {
                return Err("is not a partition bound".into());
            }
            let (to, e) = literal_list(&toks, e + 1, true)?;
            (format!("FOR VALUES FROM {from} TO {to}"), e)
        }
        Some(x) if is_word(x, "WITH") => {
            let num = |i: usize| match t(i) {
                Some(Token::Number(n, false))
                    if n.chars().all(|c| c.is_ascii_digit()) && n.len() < 10 =>
                {
                    Ok(n.clone())
                }
                _ => Err("is not a partition bound".to_string()),
            };
            let shape = t(3) == Some(&Token::LParen)
                && t(4).is_some_and(|x| is_word(x, "MODULUS"))
                && t(6) == Some(&Token::Comma)
                && t(7).is_some_and(|x| is_word(x, "REMAINDER"))
                && t(9) == Some(&Token::RParen);
            if !shape {
                return Err("is not a partition bound".into());
            }
            (
                format!(
                    "FOR VALUES WITH (MODULUS {}, REMAINDER {})",
                    num(5)?,
                    num(8)?
                ),
                10,
            )
        }
        _ => return Err("is not a partition bound".into()),
    };
    if end != toks.len() {
        return Err("holds more than a partition bound".into());
    }
    Ok(sql)
}

/// A partition key as `pg_get_partkeydef` prints it — `RANGE (a)`, `LIST (a COLLATE "C")`,
/// `HASH (a, b)`, `RANGE (a text_pattern_ops)`, `RANGE ((lower(b)))` — rebuilt: columns of
/// the table by name, collations and operator classes as quoted names, expressions through
/// [`rebuild`] with the table's columns in scope.
pub fn partition_key(text: &str, columns: &[String]) -> Result<String, String> {
    let t = text.trim();
    let (strategy, rest) = t.split_once(' ').ok_or("is not a partition key")?;
    let strategy = strategy.to_ascii_uppercase();
    if !matches!(strategy.as_str(), "RANGE" | "LIST" | "HASH") {
        return Err("is not a partition key".into());
    }
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or("is not a partition key")?;
    // Items split at commas outside parentheses and quotes, on the tokens.
    let toks = tokens(inner)?;
    let mut items: Vec<Vec<Token>> = vec![vec![]];
    let mut depth = 0i32;
    for tok in toks {
        match &tok {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                items.push(vec![]);
                continue;
            }
            _ => {}
        }
        if let Some(last) = items.last_mut() {
            last.push(tok);
        }
    }
    let mut out = Vec::new();
    for item in &items {
        out.push(key_item(item, columns)?);
    }
    Ok(format!("{strategy} ({})", out.join(", ")))
}

/// A qualified name of words and dots starting at `toks[i]`; returns it quoted and the
/// index after it.
fn qualified_name(toks: &[Token], mut i: usize) -> Result<(String, usize), String> {
    let mut parts = Vec::new();
    loop {
        match toks.get(i) {
            Some(Token::Word(w)) => parts.push(quote_ident(&w.value)),
            _ => return Err("holds a name ferry does not replay".into()),
        }
        i += 1;
        if toks.get(i) == Some(&Token::Period) {
            i += 1;
        } else {
            return Ok((parts.join("."), i));
        }
    }
}

fn key_item(item: &[Token], columns: &[String]) -> Result<String, String> {
    let (head, mut i) = match item.first() {
        Some(Token::Word(w)) if item.get(1) != Some(&Token::LParen) => {
            if !columns.contains(&w.value) {
                return Err(format!(
                    "names {:?}, which is not a column of its table",
                    w.value
                ));
            }
            (quote_ident(&w.value), 1)
        }
        _ => {
            // An expression: `(expr)` or `f(…)`, up to a COLLATE or operator class.
            let end = item
                .iter()
                .position(|t| is_word(t, "COLLATE"))
                .unwrap_or(item.len());
            let text: String = item[..end]
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(" ");
            let c = rebuild(
                &text,
                Engine::Postgres,
                Scope {
                    columns,
                    value: false,
                    any_function: false,
                },
            )?;
            (format!("({})", c.sql), end)
        }
    };
    let mut out = head;
    if item.get(i).is_some_and(|t| is_word(t, "COLLATE")) {
        let (name, j) = qualified_name(item, i + 1)?;
        out.push_str(&format!(" COLLATE {name}"));
        i = j;
    }
    if i < item.len() {
        let (name, j) = qualified_name(item, i)?;
        out.push_str(&format!(" {name}"));
        i = j;
    }
    if i != item.len() {
        return Err("holds more than a partition key".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(text: &str, cols: &[&str]) -> Result<String, String> {
        let cols: Vec<String> = cols.iter().map(|c| c.to_string()).collect();
        rebuild(
            text,
            Engine::Postgres,
            Scope {
                columns: &cols,
                value: true,
                any_function: false,
            },
        )
        .map(|c| c.sql)
    }

    #[test]
    fn ordinary_constraints_are_rebuilt() {
        assert_eq!(pg("(VALUE > 0)", &[]).unwrap(), "(VALUE > 0)");
        assert_eq!(
            pg("(VALUE ~ '^[a-z]+$'::text)", &[]).unwrap(),
            "(VALUE ~ '^[a-z]+$'::TEXT)"
        );
        assert!(pg("(length(VALUE) < 10)", &[]).is_ok());
        assert!(
            pg(
                "((VALUE)::text = ANY ((ARRAY['a'::character varying, 'b'::character varying])::text[]))",
                &[]
            )
            .is_ok()
        );
        assert!(pg("((a > 0) AND (b IS NOT NULL))", &["a", "b"]).is_ok());
        assert!(pg("(VALUE BETWEEN 1 AND 10)", &[]).is_ok());
        assert!(pg("(now() - '1 day'::interval)", &[]).is_ok());
        assert!(pg("pg_catalog.lower(VALUE) = VALUE", &[]).is_ok());
    }

    #[test]
    fn side_effects_and_second_statements_are_refused_with_a_reason() {
        let e = pg(
            "((VALUE > 0) AND (lo_from_bytea(0, '\\x41'::bytea) > 0))",
            &[],
        )
        .unwrap_err();
        assert!(e.contains("lo_from_bytea"), "{e}");
        assert!(
            pg("lo_export(1, '/tmp/x') + 1", &[])
                .unwrap_err()
                .contains("lo_export")
        );
        assert!(pg("VALUE > 0; DROP TABLE t", &[]).is_err());
        assert!(
            pg("VALUE > (SELECT 1)", &[])
                .unwrap_err()
                .contains("subquery")
        );
        assert!(pg("EXISTS (SELECT 1)", &[]).is_err());
        assert!(pg("other_col > 0", &[]).unwrap_err().contains("other_col"));
        assert!(pg("public.evil(VALUE)", &[]).unwrap_err().contains("evil"));
        assert!(pg("count(*) OVER ()", &[]).is_err());
        // A cast's type is printed from the tree and must look like a type name.
        assert!(pg("VALUE::integer", &[]).is_ok());
        let deep = format!("{}VALUE{}", "(".repeat(200), ")".repeat(200));
        assert!(pg(&deep, &[]).is_err());
    }

    #[test]
    fn a_literal_the_printer_cannot_quote_is_refused_not_sent() {
        // A value of `\')) CHECK (…) --`: sqlparser prints the quote after the backslash
        // undoubled, which the server would read as the end of the string.
        let hostile = "VALUE <> '\\'')) CHECK (pg_catalog.lo_from_bytea(0, $$x$$::bytea) > 0) --'";
        let e = pg(hostile, &[]).unwrap_err();
        assert!(e.contains("does not print back"), "{e}");
        let e = rebuild_check(
            "CHECK ((VALUE <> '\\'')) CHECK (lower(VALUE) > 0) --'::text))",
            Engine::Postgres,
            Scope {
                columns: &[],
                value: true,
                any_function: false,
            },
        )
        .unwrap_err();
        assert!(e.contains("does not print back"), "{e}");
        let w = rebuild_where(
            "v <> '\\'')) TO STDOUT; COMMIT; CREATE TABLE public.pwned(); --'",
            Engine::Postgres,
        );
        assert!(w.is_err(), "{w:?}");
        // MySQL reads backslash escapes: `'x\\\\'` is the value `x\\`, printed back as is or refused.
        if let Ok(w) = rebuild_where("c = 'x\\\\' OR c = ' OR 1=1 OR c = '", Engine::MySql) {
            assert_eq!(
                parse_one(&w, Engine::MySql).unwrap(),
                parse_one("c = 'x\\\\' OR c = ' OR 1=1 OR c = '", Engine::MySql).unwrap()
            );
        }
        // Ordinary quotes and backslashes in patterns still come back.
        assert_eq!(pg("VALUE ~ '^\\d+$'", &[]).unwrap(), "VALUE ~ '^\\d+$'");
        assert_eq!(pg("VALUE <> 'it''s'", &[]).unwrap(), "VALUE <> 'it''s'");
    }

    #[test]
    fn trusted_expressions_may_call_any_function_but_stay_one_rebuilt_expression() {
        let cols = ["name".to_string()];
        let strict = Scope {
            columns: &cols,
            value: false,
            any_function: false,
        };
        let trusted = Scope {
            any_function: true,
            ..strict
        };
        assert_eq!(
            rebuild("md5(name) <> ''", Engine::Postgres, strict).unwrap_err(),
            "calls md5"
        );
        assert_eq!(
            rebuild("md5(name) <> ''", Engine::Postgres, trusted)
                .unwrap()
                .sql,
            "md5(name) <> ''"
        );
        // Still no subquery, aggregate, second statement or other schema's function.
        for bad in [
            "(SELECT 1) = 1",
            "count(*) OVER () > 0",
            "1; DROP TABLE t",
            "evil.f(name) > 0",
        ] {
            assert!(rebuild(bad, Engine::Postgres, trusted).is_err(), "{bad}");
        }
    }

    #[test]
    fn operators_and_quoted_function_names_stay_inside_the_allowlist() {
        let e = pg("VALUE OPERATOR(public.+) 1 > 0", &[]).unwrap_err();
        assert!(e.contains("operator"), "{e}");
        assert!(pg("VALUE ### 1", &[]).is_err());
        assert!(
            pg("\"LOWER\"(VALUE) = 'a'", &[])
                .unwrap_err()
                .contains("LOWER")
        );
        assert!(pg("\"lower\"\"\"(VALUE) = 'a'", &[]).is_err());
        assert!(pg("\"lower\"(VALUE) = 'a'", &[]).is_ok());
        assert!(pg("pg_catalog.lower(VALUE) = 'a'", &[]).is_ok());
        assert!(pg("VALUE ~* '^a' AND -VALUE < 0 AND NOT (VALUE = 'b')", &[]).is_ok());
        assert!(rebuild_where("v = $1$x$1$", Engine::Postgres).is_err());
        assert!(rebuild_where("v = $t$x$t$", Engine::Postgres).is_ok());
    }

    #[test]
    fn checks_translate_between_engines_only_when_their_meaning_cannot_change() {
        let cols = vec!["qty".to_string(), "Price".to_string()];
        let scope = Scope {
            columns: &cols,
            value: false,
            any_function: false,
        };
        let t = translate(
            "`qty` > 0 AND `Price` BETWEEN 1 AND 10",
            Engine::MySql,
            Engine::Postgres,
            scope,
        )
        .unwrap();
        assert_eq!(t.sql, "\"qty\" > 0 AND \"Price\" BETWEEN 1 AND 10");
        let t = translate("(qty > 0)", Engine::Postgres, Engine::MySql, scope).unwrap();
        assert_eq!(t.sql, "(`qty` > 0)");
        // Functions, casts and engine-specific operators stay behind, named.
        let e = translate(
            "char_length(`qty`) > 0",
            Engine::MySql,
            Engine::Postgres,
            scope,
        )
        .unwrap_err();
        assert!(e.contains("char_length"), "{e}");
        assert!(
            translate(
                "(qty > (0)::numeric)",
                Engine::Postgres,
                Engine::MySql,
                scope
            )
            .is_err()
        );
        assert!(translate("`qty` > 0 || 1", Engine::MySql, Engine::Postgres, scope).is_err());
        assert!(translate("`nope` > 0", Engine::MySql, Engine::Postgres, scope).is_err());
        assert!(translate("qty <> 'a\\'", Engine::Postgres, Engine::MySql, scope).is_err());
    }

    #[test]
    fn sqlite_create_table_yields_its_checks_and_generated_columns() {
        let sql = "CREATE TABLE \"c\" (id INTEGER PRIMARY KEY AUTOINCREMENT, \
                   qty INT NOT NULL DEFAULT 1 CONSTRAINT pos CHECK (qty > 0), \
                   v TEXT CHECK (typeof(v) = 'text' AND length(v) < 10), \
                   total INT GENERATED ALWAYS AS (qty * 2) STORED, \
                   half AS (qty / 2), \
                   pid INT REFERENCES p (id) ON DELETE CASCADE, \
                   CONSTRAINT small CHECK (Qty < 100), CHECK (v <> 'x'))";
        let d = declared_exprs(sql, Engine::Sqlite).unwrap();
        let checks: Vec<(Option<&str>, Option<&str>, &str)> = d
            .checks
            .iter()
            .map(|c| {
                (
                    c.name.as_deref(),
                    c.column.as_deref(),
                    c.expr.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            checks,
            [
                (Some("pos"), Some("qty"), "qty > 0"),
                (None, Some("v"), "typeof(v) = 'text' AND length(v) < 10"),
                (Some("small"), None, "Qty < 100"),
                (None, None, "v <> 'x'"),
            ]
        );
        let generated: Vec<(&str, &str, bool)> = d
            .generated
            .iter()
            .map(|g| (g.column.as_str(), g.expr.as_deref().unwrap(), g.stored))
            .collect();
        assert_eq!(
            generated,
            [("total", "qty * 2", true), ("half", "qty / 2", false)]
        );
        // SQLite's names ignore case; its own functions pass only in its dialect.
        let cols = vec!["qty".to_string(), "v".to_string()];
        let scope = Scope {
            columns: &cols,
            value: false,
            any_function: false,
        };
        assert!(rebuild("Qty < 100", Engine::Sqlite, scope).is_ok());
        assert!(rebuild("Qty < 100", Engine::Postgres, scope).is_err());
        assert!(rebuild("typeof(v) = 'text'", Engine::Sqlite, scope).is_ok());
        assert!(rebuild("typeof(v) = 'text'", Engine::Postgres, scope).is_err());
        assert!(
            rebuild("load_extension('x') IS NULL", Engine::Sqlite, scope)
                .unwrap_err()
                .contains("load_extension")
        );
        // One CREATE TABLE, nothing else.
        assert!(declared_exprs("CREATE TABLE t (a INT); DROP TABLE t", Engine::Sqlite).is_err());
        assert!(declared_exprs("CREATE VIEW v AS SELECT 1", Engine::Sqlite).is_err());
        // SQLite's own table options and column clauses parse.
        for sql in [
            "CREATE TABLE t (a INT CHECK (a > 0)) STRICT",
            "CREATE TABLE t (a INT PRIMARY KEY, b) WITHOUT ROWID",
            "CREATE TABLE t (a INTEGER PRIMARY KEY ON CONFLICT REPLACE, b TEXT COLLATE NOCASE)",
        ] {
            assert!(declared_exprs(sql, Engine::Sqlite).is_ok(), "{sql}");
        }
    }

    #[test]
    fn a_long_operator_chain_is_refused_before_parsing() {
        let chain = format!("VALUE{} > 0", " + 1".repeat(300_000));
        let e = pg(&chain, &[]).unwrap_err();
        assert!(e.contains("longer than") || e.contains("tokens"), "{e}");
        let chain = format!("VALUE{} > 0", " + 1".repeat(4_000));
        let e = pg(&chain, &[]).unwrap_err();
        assert!(e.contains("tokens") || e.contains("nests"), "{e}");
        // A long IN list is flat, and fine.
        let list: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        assert!(pg(&format!("VALUE IN ({})", list.join(", ")), &[]).is_ok());
    }

    #[test]
    fn checks_keep_their_not_valid_and_where_is_one_expression() {
        let c = rebuild_check(
            "CHECK ((VALUE > 0)) NOT VALID",
            Engine::Postgres,
            Scope {
                columns: &[],
                value: true,
                any_function: false,
            },
        )
        .unwrap();
        assert_eq!(c.sql, "CHECK ((VALUE > 0)) NOT VALID");
        assert!(rebuild_where("id > 10 AND name LIKE 'a%'", Engine::Postgres).is_ok());
        assert!(
            rebuild_where(
                "true)) TO STDOUT (FORMAT binary); COMMIT; CREATE TABLE x (",
                Engine::Postgres
            )
            .is_err()
        );
        assert!(rebuild_where("1 = 1; DROP TABLE t", Engine::MySql).is_err());
    }

    #[test]
    fn a_cursor_bound_stays_one_literal_and_adds_is_null_only_for_nullable_columns() {
        let nn = cursor_bound(Engine::Postgres, "u", "2026-01-01 00:00:00", false, false).unwrap();
        assert_eq!(nn, "\"u\" >= '2026-01-01 00:00:00'");
        let n = cursor_bound(Engine::Postgres, "u", "5", true, true).unwrap();
        assert_eq!(n, "\"u\" >= 5 OR \"u\" IS NULL");
        // A mark that would end the literal under MySQL's backslash escapes is refused.
        let hostile = "2026-01-03 00:00:00\\' AND 1=0 -- ";
        assert!(cursor_bound(Engine::MySql, "u", hostile, false, false).is_err());
        assert!(cursor_bound(Engine::MySql, "u", "1 OR 1=1", true, false).is_err());
        // A negative bound (a count lookback larger than the mark) stays one literal.
        assert_eq!(
            cursor_bound(Engine::MySql, "id", "-400", true, false).unwrap(),
            "`id` >= -400"
        );
        assert!(cursor_bound(Engine::MySql, "id", "--400", true, false).is_err());
    }
}

#[cfg(test)]
mod partition_tests {
    use super::*;

    #[test]
    fn bounds_are_rebuilt_from_their_constants() {
        assert_eq!(
            partition_bound("FOR VALUES FROM ('2020-01-01') TO ('2021-01-01')").unwrap(),
            "FOR VALUES FROM ('2020-01-01') TO ('2021-01-01')"
        );
        assert_eq!(
            partition_bound("FOR VALUES FROM (MINVALUE, -5) TO ('it''s', MAXVALUE)").unwrap(),
            "FOR VALUES FROM (MINVALUE, -5) TO ('it''s', MAXVALUE)"
        );
        assert_eq!(
            partition_bound("FOR VALUES IN (1, 2, NULL)").unwrap(),
            "FOR VALUES IN (1, 2, NULL)"
        );
        assert_eq!(
            partition_bound("FOR VALUES WITH (modulus 4, remainder 0)").unwrap(),
            "FOR VALUES WITH (MODULUS 4, REMAINDER 0)"
        );
        assert_eq!(partition_bound("DEFAULT").unwrap(), "DEFAULT");
        // What a forged catalog could hold instead.
        assert!(partition_bound("FOR VALUES IN (lo_export(1, '/tmp/x') + 1)").is_err());
        assert!(partition_bound("FOR VALUES IN (1); DROP TABLE t").is_err());
        assert!(partition_bound("FOR VALUES IN ((SELECT 1))").is_err());
    }

    #[test]
    fn keys_name_columns_or_checked_expressions() {
        let cols = vec!["a".to_string(), "Day".to_string()];
        assert_eq!(partition_key("RANGE (a)", &cols).unwrap(), "RANGE (\"a\")");
        assert_eq!(
            partition_key("LIST (\"Day\" COLLATE \"C\" text_pattern_ops)", &cols).unwrap(),
            "LIST (\"Day\" COLLATE \"C\" \"text_pattern_ops\")"
        );
        assert_eq!(
            partition_key("HASH (a, \"Day\")", &cols).unwrap(),
            "HASH (\"a\", \"Day\")"
        );
        assert!(partition_key("RANGE ((lower(\"Day\")))", &cols).is_ok());
        assert!(partition_key("RANGE ((lo_export(1, 'x')))", &cols).is_err());
        assert!(partition_key("RANGE (nope)", &cols).is_err());
        assert!(partition_key("RANGE (a); DROP TABLE t", &cols).is_err());
    }
}
