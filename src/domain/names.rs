//! Validated names: a [`TableRef`], a [`ColumnName`], a [`ProcessorName`] and an
//! [`IdempotencyKey`] can only hold values that are safe to use, so later code (above all
//! the SQL the BigQuery adapter writes) never checks them again.
//!
//! The rules are BigQuery's, narrowed to ASCII so that no Unicode look-alike or
//! whitespace can reach SQL text:
//! - project ids: 6–30 characters, lowercase letters, digits and hyphens, starting with a
//!   letter, not ending with a hyphen (<https://cloud.google.com/resource-manager/docs/creating-managing-projects>);
//! - dataset ids: letters, digits and underscores, at most 1,024 characters
//!   (<https://cloud.google.com/bigquery/docs/datasets#dataset-naming>);
//! - table ids: BigQuery allows up to 1,024 bytes of Unicode letters, marks, numbers,
//!   connectors, dashes and spaces (<https://cloud.google.com/bigquery/docs/tables#table_naming>);
//!   we accept the ASCII subset `[A-Za-z0-9_-]` without `--` (a SQL comment marker);
//! - column names: letters, digits and underscores, starting with a letter or underscore,
//!   at most 300 characters, and none of the reserved prefixes `_TABLE_`, `_FILE_`,
//!   `_PARTITION`, `_ROW_TIMESTAMP`, `__ROOT__`, `_COLIDENTIFIER`, case-insensitively
//!   (<https://cloud.google.com/bigquery/docs/schemas#column_names>).

use std::fmt;

/// Why a name was refused; the text says which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

/// A BigQuery table, `project.dataset.table`. Displays as that dotted form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableRef {
    project: String,
    dataset: String,
    table: String,
}

impl TableRef {
    /// Parses `project.dataset.table`.
    ///
    /// # Errors
    /// [`NameError`] naming the part that breaks BigQuery's naming rules.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let parts: Vec<&str> = s.split('.').collect();
        let [project, dataset, table] = parts.as_slice() else {
            return Err(NameError(format!(
                "table must be `project.dataset.table` (three parts separated by dots), got {} part(s)",
                parts.len()
            )));
        };
        validate_project(project)?;
        validate_dataset(dataset)?;
        validate_table(table)?;
        Ok(Self {
            project: (*project).into(),
            dataset: (*dataset).into(),
            table: (*table).into(),
        })
    }

    /// The GCP project id.
    pub fn project(&self) -> &str {
        &self.project
    }
    /// The dataset id.
    pub fn dataset(&self) -> &str {
        &self.dataset
    }
    /// The table id.
    pub fn table(&self) -> &str {
        &self.table
    }
    /// The back-quoted form for GoogleSQL text, e.g. `` `p.d.t` ``. Safe because every
    /// part was validated to exclude back-quotes, dots and whitespace.
    pub fn quoted(&self) -> String {
        format!("`{}.{}.{}`", self.project, self.dataset, self.table)
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.project, self.dataset, self.table)
    }
}

/// Checks a GCP project id (the rule in the module docs).
///
/// # Errors
/// [`NameError`] stating the rule.
pub fn validate_project(p: &str) -> Result<(), NameError> {
    let ok = (6..=30).contains(&p.len())
        && p.starts_with(|c: char| c.is_ascii_lowercase())
        && !p.ends_with('-')
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(NameError(format!(
            "project id {p:?} is not valid: 6 to 30 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen"
        )))
    }
}

fn validate_dataset(d: &str) -> Result<(), NameError> {
    let ok = !d.is_empty()
        && d.len() <= 1024
        && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(NameError(format!(
            "dataset id {d:?} is not valid: 1 to 1024 letters, digits or underscores"
        )))
    }
}

fn validate_table(t: &str) -> Result<(), NameError> {
    let ok = !t.is_empty()
        && t.len() <= 1024
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !t.contains("--");
    if ok {
        Ok(())
    } else {
        Err(NameError(format!(
            "table id {t:?} is not valid: 1 to 1024 ASCII letters, digits, underscores or single hyphens"
        )))
    }
}

/// A BigQuery column name (see the module docs for the rules).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ColumnName(String);

const RESERVED_COLUMN_PREFIXES: [&str; 6] = [
    "_TABLE_",
    "_FILE_",
    "_PARTITION",
    "_ROW_TIMESTAMP",
    "__ROOT__",
    "_COLIDENTIFIER",
];

impl ColumnName {
    /// Parses a column name.
    ///
    /// # Errors
    /// [`NameError`] saying which rule the name breaks.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() || s.len() > 300 {
            return Err(NameError(format!(
                "column name {s:?} must be 1 to 300 characters"
            )));
        }
        if !s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(NameError(format!(
                "column name {s:?} is not valid: letters, digits or underscores, starting with a letter or underscore"
            )));
        }
        let upper = s.to_ascii_uppercase();
        if let Some(prefix) = RESERVED_COLUMN_PREFIXES
            .iter()
            .find(|p| upper.starts_with(*p))
        {
            return Err(NameError(format!(
                "column name {s:?} uses the reserved prefix {prefix}"
            )));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The back-quoted form for GoogleSQL text; safe because of the validation.
    pub fn quoted(&self) -> String {
        format!("`{}`", self.0)
    }
}

impl fmt::Display for ColumnName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of the processor that sent a batch (the breaker's default scope): 1 to 128
/// printable ASCII characters without whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProcessorName(String);

impl ProcessorName {
    /// Parses a processor name.
    ///
    /// # Errors
    /// [`NameError`] when empty, longer than 128 characters, or not printable ASCII.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        printable_token(s, 128, "processor_name").map(Self)
    }
    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A caller's idempotency key: 1 to 255 printable ASCII characters without whitespace.
/// Re-posting a batch with the same key (for the same processor) returns the original batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses an idempotency key.
    ///
    /// # Errors
    /// [`NameError`] when empty, longer than 255 characters, or not printable ASCII.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        printable_token(s, 255, "idempotency_key").map(Self)
    }
    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn printable_token(s: &str, max: usize, what: &str) -> Result<String, NameError> {
    if s.is_empty() || s.len() > max || !s.chars().all(|c| c.is_ascii_graphic()) {
        return Err(NameError(format!(
            "{what} must be 1 to {max} printable ASCII characters without spaces"
        )));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_ref_accepts_bigquery_names_and_quotes_them() {
        let t = TableRef::parse("nba-props-platform.nba_raw.bdl_player_boxscores").unwrap();
        assert_eq!(t.project(), "nba-props-platform");
        assert_eq!(
            t.quoted(),
            "`nba-props-platform.nba_raw.bdl_player_boxscores`"
        );
        assert_eq!(
            t.to_string(),
            "nba-props-platform.nba_raw.bdl_player_boxscores"
        );
    }

    #[test]
    fn table_ref_rejects_injection_and_lookalikes() {
        for bad in [
            "p.d.t",
            "project.d",
            "project.d.t.x",
            "project.d.t`; DROP TABLE x; --",
            "project.d.t--",
            "Project.d.t",
            "project-.d.t",
            "project.d s.t",
            "project.d.t\n",
            "project.d.tаble", // Cyrillic a
            "project.d.t;",
            "project..t",
        ] {
            assert!(TableRef::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn column_names_follow_bigquery_rules() {
        assert!(ColumnName::parse("game_id").is_ok());
        assert!(ColumnName::parse("_private").is_ok());
        for bad in [
            "",
            "1abc",
            "game id",
            "game`id",
            "_PARTITIONTIME",
            "_table_x",
            "a-b",
            "é",
        ] {
            assert!(ColumnName::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(ColumnName::parse(&"a".repeat(301)).is_err());
    }

    #[test]
    fn tokens_refuse_whitespace_and_control_characters() {
        assert!(ProcessorName::parse("bdl_boxscores_processor").is_ok());
        assert!(ProcessorName::parse("two words").is_err());
        assert!(IdempotencyKey::parse("backfill-2026-01-24\n").is_err());
        assert!(IdempotencyKey::parse("").is_err());
    }
}
