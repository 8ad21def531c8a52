//! The documents that describe the configuration agree with it. `docs/configuration.md` has one
//! row per key of `SCHEMA` in `src/config.rs` (read from the source, as `tests/cli.rs` reads
//! it) and none other, and each row's default, environment variable and range are the ones the
//! configuration layers really have; `config/iothub.example.toml` shows every built-in default;
//! and a `section.key` or `IOTHUB_SECTION_KEY` named in the operator documents is a real key.
//!
//! A key added to `SCHEMA` fails the first test until its row is written; the failure prints the
//! row to fill in.

use std::collections::BTreeSet;
use std::path::PathBuf;

use iothub::{Config, ConfigBuilder, ConfigError};

/// One `SCHEMA` entry: section, key and kind (`Uint`, `Bool`, `Str` or `StrList`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SchemaKey {
    section: String,
    key: String,
    kind: String,
}

impl SchemaKey {
    fn name(&self) -> String {
        format!("{}.{}", self.section, self.key)
    }

    fn env_var(&self) -> String {
        format!("IOTHUB_{}_{}", self.section, self.key).to_ascii_uppercase()
    }
}

/// One row of a key table in `docs/configuration.md`.
#[derive(Debug)]
struct DocRow {
    name: String,
    default: String,
    env_var: String,
    range: String,
    meaning: String,
}

fn read(path: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// `SCHEMA` from the source: entries look like `("server", "max_connections", Kind::Uint),`.
fn schema() -> Vec<SchemaKey> {
    let keys: Vec<SchemaKey> = read("src/config.rs")
        .lines()
        .filter_map(|line| {
            let entry = line.trim().strip_prefix("(\"")?;
            let (section, rest) = entry.split_once("\", \"")?;
            let (key, rest) = rest.split_once("\", ")?;
            let kind = rest.strip_prefix("Kind::")?.strip_suffix("),")?;
            Some(SchemaKey { section: section.to_owned(), key: key.to_owned(), kind: kind.to_owned() })
        })
        .collect();
    assert!(keys.len() >= 40, "could not read SCHEMA from src/config.rs: {keys:?}");
    keys
}

/// The header of every key table in `docs/configuration.md`.
const KEY_TABLE_HEADER: &str = "| key | default | environment variable | range | meaning |";

/// The rows of the key tables of `docs/configuration.md`: the lines after a key table's header
/// and its `|---|` line, up to the first line that is not a table row.
fn doc_rows() -> Vec<DocRow> {
    let text = read("docs/configuration.md");
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.trim() == KEY_TABLE_HEADER {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 5, "a key row has five cells: {line}");
        let unquote = |cell: &str| cell.trim_matches('`').to_owned();
        rows.push(DocRow {
            name: unquote(cells[0]),
            default: cells[1].to_owned(),
            env_var: unquote(cells[2]),
            range: cells[3].to_owned(),
            meaning: cells[4].to_owned(),
        });
    }
    assert!(rows.len() >= 40, "could not read the key tables of docs/configuration.md");
    rows
}

/// The configuration as a comparable value: every field, printed.
fn fingerprint(config: &Config) -> String {
    format!("{config:#?}")
}

/// The configuration with one `section.key = value` line of TOML on top of the defaults.
fn with_toml(key: &SchemaKey, value: &str) -> Result<Config, ConfigError> {
    let text = format!("[{}]\n{} = {value}\n", key.section, key.key);
    ConfigBuilder::new().toml("docs/configuration.md", &text)?.build()
}

/// What an environment variable holds for a TOML value: strings unquoted, lists comma-separated.
fn env_text(kind: &str, toml_value: &str) -> String {
    let table = format!("v = {toml_value}").parse::<toml::Table>();
    let value = table.unwrap_or_else(|e| panic!("{toml_value} is not a TOML value: {e}"))["v"].clone();
    match (kind, value) {
        ("Str", toml::Value::String(text)) => text,
        ("StrList", toml::Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
            .join(","),
        (_, other) => other.to_string(),
    }
}

/// Whether the default configuration leaves `key` unset (`None`), read from its printed form.
fn unset_by_default(key: &SchemaKey) -> bool {
    let printed = fingerprint(&Config::defaults());
    let section = printed.split(&format!("\n    {}: ", key.section)).nth(1).unwrap_or_default();
    let section = section.split("\n    },").next().unwrap_or_default();
    section.lines().any(|line| line.trim() == format!("{}: None,", key.key))
}

#[test]
fn configuration_doc_has_one_row_per_schema_key_and_no_other() {
    let schema = schema();
    let rows = doc_rows();
    let documented: Vec<&str> = rows.iter().map(|row| row.name.as_str()).collect();
    let unique: BTreeSet<&str> = documented.iter().copied().collect();
    assert_eq!(unique.len(), documented.len(), "a key has two rows in docs/configuration.md");
    let missing: Vec<String> = schema
        .iter()
        .filter(|key| !unique.contains(key.name().as_str()))
        .map(|key| {
            let range = if key.kind == "Uint" { "MIN to MAX" } else { "" };
            format!("| `{}` | `DEFAULT` or unset | `{}` | {range} | MEANING |", key.name(), key.env_var())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md has no row for these keys of SCHEMA; add, in the section's table \
         (a new section needs a heading and a table of its own):\n{}",
        missing.join("\n")
    );
    let known: BTreeSet<String> = schema.iter().map(SchemaKey::name).collect();
    let unknown: Vec<&str> = documented.iter().copied().filter(|name| !known.contains(*name)).collect();
    assert!(unknown.is_empty(), "docs/configuration.md documents keys SCHEMA does not have: {unknown:?}");
    for row in &rows {
        assert!(row.meaning.len() > 10, "{}: the meaning is missing", row.name);
    }
}

#[test]
fn documented_defaults_are_the_built_in_defaults() {
    let defaults = fingerprint(&Config::defaults());
    let rows = doc_rows();
    for key in schema() {
        let Some(row) = rows.iter().find(|row| row.name == key.name()) else { continue };
        if row.default == "unset" {
            assert!(unset_by_default(&key), "{}: documented as unset, but it has a default", row.name);
            continue;
        }
        let value = row.default.strip_prefix('`').and_then(|v| v.strip_suffix('`'));
        let value = value.unwrap_or_else(|| panic!("{}: the default is `VALUE` or unset", row.name));
        let config = with_toml(&key, value).unwrap_or_else(|e| panic!("{}: default {value}: {e}", row.name));
        assert_eq!(fingerprint(&config), defaults, "{}: {value} is not its built-in default", row.name);
    }
}

#[test]
fn documented_environment_variables_set_their_keys() {
    let defaults = fingerprint(&Config::defaults());
    let rows = doc_rows();
    for key in schema() {
        let Some(row) = rows.iter().find(|row| row.name == key.name()) else { continue };
        assert_eq!(row.env_var, key.env_var(), "{}: the environment variable", row.name);
        if row.default == "unset" {
            // Any value will do to see that the variable names the key.
            let result = ConfigBuilder::new().env([(row.env_var.clone(), String::new())]);
            if let Err(error) = result {
                assert_eq!(error.key, row.name, "{} does not name {}: {error}", row.env_var, row.name);
            }
            continue;
        }
        let text = env_text(&key.kind, row.default.trim_matches('`'));
        let config = ConfigBuilder::new()
            .env([(row.env_var.clone(), text.clone())])
            .and_then(ConfigBuilder::build)
            .unwrap_or_else(|e| panic!("{}={text}: {e}", row.env_var));
        assert_eq!(
            fingerprint(&config),
            defaults,
            "{}={text} did not set {} to its default",
            row.env_var,
            row.name
        );
    }
}

#[test]
fn documented_ranges_are_the_ranges_enforced() {
    let rows = doc_rows();
    for key in schema() {
        let Some(row) = rows.iter().find(|row| row.name == key.name()) else { continue };
        if key.kind != "Uint" {
            assert!(row.range.is_empty(), "{}: only integer keys have a range", row.name);
            continue;
        }
        let bounds = row.range.replace(',', "");
        let (min, max) = bounds
            .split_once(" to ")
            .and_then(|(min, max)| Some((min.parse::<u64>().ok()?, max.parse::<u64>().ok()?)))
            .unwrap_or_else(|| panic!("{}: the range is MIN to MAX, found {:?}", row.name, row.range));
        let refused = |value: u128| match with_toml(&key, &value.to_string()) {
            Ok(_) => false,
            Err(error) => error.key == row.name,
        };
        for inside in [min, max] {
            if let Err(error) = with_toml(&key, &inside.to_string()) {
                panic!("{}: {inside} is in the documented range but refused: {error}", row.name);
            }
        }
        assert!(
            refused(u128::from(max) + 1),
            "{}: {} is accepted, beyond the documented range",
            row.name,
            max + 1
        );
        if min > 0 {
            assert!(
                refused(u128::from(min) - 1),
                "{}: {} is accepted, below the documented range",
                row.name,
                min - 1
            );
        }
    }
}

#[test]
fn example_config_shows_every_built_in_default() {
    let example = read("config/iothub.example.toml");
    let config =
        ConfigBuilder::new().toml("config/iothub.example.toml", &example).and_then(ConfigBuilder::build);
    assert_eq!(
        fingerprint(&config.unwrap()),
        fingerprint(&Config::defaults()),
        "config/iothub.example.toml sets a key to something other than its built-in default"
    );
}

/// Inline code spans of `text` (between single backticks, outside fenced blocks; a span may
/// run over a line break, as in Markdown).
fn code_spans(text: &str) -> Vec<String> {
    let mut prose = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            prose.push('\n');
            continue;
        }
        if !fenced {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|span| span.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn keys_named_in_the_operator_documents_exist() {
    let schema = schema();
    let sections: BTreeSet<&str> = schema.iter().map(|key| key.section.as_str()).collect();
    let known: BTreeSet<String> = schema.iter().map(SchemaKey::name).collect();
    let variables: BTreeSet<String> = schema.iter().map(SchemaKey::env_var).collect();
    for path in
        ["README.md", "docs/configuration.md", "docs/migrating-from-mosquitto.md", "docs/operations.md"]
    {
        for span in code_spans(&read(path)) {
            // `section.key`, `section.key = value` or `section.key=value`, in a known section.
            let name = span.split('=').next().unwrap_or_default().trim();
            if let Some((section, key)) = name.split_once('.') {
                let is_name = key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') && !key.is_empty();
                if sections.contains(section) && is_name {
                    assert!(known.contains(name), "{path} names `{name}`, which is not a configuration key");
                }
            }
            // IOTHUB_SECTION_KEY of a known section.
            let variable = span.split('=').next().unwrap_or_default();
            if let Some(rest) = variable.strip_prefix("IOTHUB_") {
                let of_known_section =
                    sections.iter().any(|s| rest.starts_with(&format!("{}_", s.to_uppercase())));
                let is_name = rest.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
                if of_known_section && is_name {
                    assert!(variables.contains(variable), "{path} names {variable}, which sets no key");
                }
            }
        }
    }
}
