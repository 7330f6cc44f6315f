//! The two migration folders and `src/db/schema.rs` describe one schema: each backend is
//! migrated on a fresh database and its tables and columns (name, type, nullability, primary
//! key) read back (`PRAGMA table_info`, `information_schema`), as diesel would type them.
//! The MariaDB half skips without `TEST_MYSQL_URL`; CI sets it with `PAIRCHAT_REQUIRE_MYSQL=1`.

use std::collections::BTreeMap;

use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, RunQueryDsl};
use pairchat::db::{self, DbConn};

use crate::helpers::{available_or_skip, mysql_server_url};

/// One column as diesel types it: `(name, diesel type, nullable, in the primary key)`.
type Column = (String, String, bool, bool);
/// Every table's columns in their order, by table name.
type Schema = BTreeMap<String, Vec<Column>>;

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    nullable: i64,
    #[diesel(sql_type = BigInt)]
    key: i64,
}

/// The diesel type of a column's declared (SQLite) or full (MySQL) type.
fn diesel_type(declared: &str) -> String {
    let lower = declared.to_ascii_lowercase();
    let base = lower.split('(').next().unwrap_or_default().trim();
    match (base, lower.as_str()) {
        ("bigint", _) => "BigInt",
        ("integer" | "int", _) => "Integer",
        (_, "tinyint(1)") | ("boolean" | "bool", _) => "Bool",
        ("timestamp" | "datetime", _) => "Timestamp",
        ("text" | "mediumtext" | "varchar", _) => "Text",
        _ => return declared.to_owned(),
    }
    .to_owned()
}

fn schema_of(rows: Vec<Row>) -> Schema {
    let mut schema = Schema::new();
    for row in rows {
        schema.entry(row.table_name).or_default().push((
            row.name,
            diesel_type(&row.kind),
            row.nullable != 0,
            row.key != 0,
        ));
    }
    schema
}

/// Migrates `url` and reads its schema back.
fn migrated_schema(url: &str) -> Schema {
    let pool = db::build_pool(url, 1).expect("pool");
    let mut conn = db::get(&pool).expect("connection");
    db::run_migrations(&mut conn).expect("migrations");
    let rows: Vec<Row> = match &mut *conn {
        DbConn::Sqlite(c) => diesel::sql_query(
            "SELECT m.name AS table_name, p.name AS name, p.type AS kind, \
                    p.\"notnull\" = 0 AS nullable, p.pk > 0 AS key \
             FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
               AND m.name != '__diesel_schema_migrations' \
             ORDER BY m.name, p.cid",
        )
        .load(c),
        #[cfg(feature = "mysql")]
        DbConn::Mysql(c) => diesel::sql_query(
            "SELECT TABLE_NAME AS table_name, COLUMN_NAME AS name, COLUMN_TYPE AS kind, \
                    CAST(IS_NULLABLE = 'YES' AS SIGNED) AS nullable, \
                    CAST(COLUMN_KEY = 'PRI' AS SIGNED) AS `key` \
             FROM information_schema.columns \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME != '__diesel_schema_migrations' \
             ORDER BY TABLE_NAME, ORDINAL_POSITION",
        )
        .load(c),
    }
    .expect("columns");
    schema_of(rows)
}

fn sqlite_schema() -> Schema {
    let dir = tempfile::tempdir().expect("temporary folder");
    migrated_schema(&format!(
        "sqlite://{}",
        dir.path().join("schema.db").display()
    ))
}

/// The tables of `src/db/schema.rs` as it declares them (the primary key from `table (pk)`).
fn declared_schema() -> Schema {
    let text = include_str!("../../src/db/schema.rs");
    let mut schema = Schema::new();
    let mut table: Option<(String, Vec<String>)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(head) = line.strip_suffix('{').map(str::trim) {
            if let Some((name, keys)) = head.split_once(" (") {
                let keys = keys.trim_end_matches(')').split(',');
                table = Some((name.into(), keys.map(|k| k.trim().to_owned()).collect()));
            }
        } else if let (Some((name, keys)), Some((column, kind))) =
            (&table, line.trim_end_matches(',').split_once(" -> "))
        {
            let nullable = kind.starts_with("Nullable<");
            let kind = kind.trim_start_matches("Nullable<").trim_end_matches('>');
            schema.entry(name.clone()).or_default().push((
                column.to_owned(),
                kind.to_owned(),
                nullable,
                keys.iter().any(|k| k == column),
            ));
        } else if line == "}" {
            table = None;
        }
    }
    schema
}

#[test]
fn schema_rs_describes_the_sqlite_migrations() {
    let declared = declared_schema();
    assert!(declared.contains_key("chat_user"), "{declared:?}");
    assert_eq!(declared, sqlite_schema());
}

#[test]
fn the_sqlite_and_mysql_migrations_describe_the_same_tables_and_columns() {
    let server = mysql_server_url();
    let test = "the_sqlite_and_mysql_migrations_describe_the_same_tables_and_columns";
    let how = "set TEST_MYSQL_URL (and build with --features mysql) to run it";
    if !available_or_skip(server.is_some(), "PAIRCHAT_REQUIRE_MYSQL", test, how) {
        return;
    }
    let db = crate::helpers::TestDb::new();
    assert!(db.url.starts_with("mysql://"), "{}", db.url);
    assert_eq!(migrated_schema(&db.url), sqlite_schema());
}
