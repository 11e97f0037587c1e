//! The invariants of ARCHITECTURE.md that neither the compiler nor clippy can check, checked on
//! the source text: which layer may import which, who may end a session, who may read the clock,
//! and how long a module may grow.

use std::path::{Path, PathBuf};

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file at or under `dir`, with its code up to its unit-test module.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            let entries = std::fs::read_dir(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            pending.extend(entries.map(|entry| entry.unwrap().path()));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            // A module compiled only for tests (`#![cfg(test)]`, like `domain/testing.rs`) is
            // test code throughout; otherwise only what follows the first `#[cfg(test)]` is.
            let test_only = text.lines().any(|line| line.trim() == "#![cfg(test)]");
            let code = if test_only {
                ""
            } else {
                text.split("#[cfg(test)]").next().unwrap_or_default()
            };
            // Comments may name anything.
            let code: String = code
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            found.push((path, code));
        }
    }
    assert!(!found.is_empty(), "no sources under {dir:?}");
    found
}

fn relative(path: &Path) -> String {
    path.strip_prefix(source_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The places in `dir` that mention any of `forbidden`, as "file: word".
fn mentions(dir: &str, forbidden: &[&str], exempt: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, code) in sources(&source_root().join(dir)) {
        let name = relative(&path);
        if exempt.contains(&name.as_str()) {
            continue;
        }
        let squeezed: String = code.split_whitespace().collect();
        for word in forbidden {
            if code.contains(word) || squeezed.contains(word) {
                found.push(format!("{name}: {word}"));
            }
        }
    }
    found
}

/// The top-level modules of this crate that `code` names (`crate::x::…`, `crate::{x, y::…}`).
fn crate_modules(code: &str) -> Vec<String> {
    let squeezed: String = code.split_whitespace().collect();
    let mut modules = Vec::new();
    for (at, _) in squeezed.match_indices("crate::") {
        let rest = &squeezed[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut item_start) = (0, true);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    _ if item_start => {
                        let name: String = group[i..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        modules.push(name);
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            modules.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    modules
}

/// The files in `dir` that import any of `modules` of this crate, or of the `crates`.
fn imports(dir: &str, modules: &[&str], crates: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, code) in sources(&source_root().join(dir)) {
        let named = crate_modules(&code);
        for module in modules {
            if named.iter().any(|name| name == module) {
                found.push(format!("{}: crate::{module}", relative(&path)));
            }
        }
        for name in crates {
            let path_start = format!("{name}::");
            // A path that starts with the crate, not the tail of a longer one (`x::redis::`).
            let used = code.match_indices(&path_start).any(|(at, _)| {
                !code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
            });
            if used {
                found.push(format!("{}: {name}", relative(&path)));
            }
        }
    }
    found
}

#[test]
fn the_rules_import_neither_transport_storage_nor_machinery() {
    let found = imports(
        "domain",
        &[
            "grpc",
            "http",
            "store",
            "engine",
            "app",
            "config",
            "metrics",
            "readiness",
        ],
        &["tonic", "axum", "sqlx", "redis", "argon2", "prometheus"],
    );
    assert!(
        found.is_empty(),
        "domain/ reaches outside its ports: {found:?}"
    );
    let machinery = mentions(
        "domain",
        &["tokio::sync", "tokio::time", "tokio::spawn"],
        &[],
    );
    assert!(
        machinery.is_empty(),
        "machinery in the rules: {machinery:?}"
    );
}

#[test]
fn storage_and_machinery_import_the_rules_never_the_transport() {
    let mut found = imports("store", &["grpc", "engine", "app", "config"], &["tonic"]);
    found.extend(imports(
        "engine",
        &["grpc", "store", "app", "config"],
        &["sqlx", "redis"],
    ));
    found.extend(imports(
        "grpc",
        &["store", "http"],
        &["sqlx", "redis", "axum"],
    ));
    // The HTTP listener is a transport too: the keys through the domain, never the store, and
    // nothing of the gRPC one.
    found.extend(imports(
        "http",
        &["store", "grpc", "engine"],
        &["sqlx", "redis", "tonic"],
    ));
    found.extend(imports(
        "readiness.rs",
        &["store", "grpc", "http", "engine"],
        &["sqlx", "redis", "tonic", "axum"],
    ));
    assert!(found.is_empty(), "an arrow points the wrong way: {found:?}");
}

#[test]
fn the_rules_never_read_the_clock() {
    // Clippy bans the std and tokio clocks outside domain/time.rs and engine/; this keeps the
    // rules from reading it through Timestamp::now as well.
    let found = mentions(
        "domain",
        &["Timestamp::now", "SystemTime", "Instant"],
        &["domain/time.rs"],
    );
    assert!(found.is_empty(), "the rules read the clock: {found:?}");
}

#[test]
fn only_the_revoker_ends_sessions_and_announces_it() {
    // The store's revoking writes, and the announcement that must follow each, happen in one
    // place: write, announce, then answer (domain/revoker.rs).
    let revoking = [
        "store.revoke_session(",
        "store.revoke_user_sessions(",
        "store.evict_sessions_beyond(",
        "store.suspend_user(",
        "news.announce(",
        "hub.announce(",
        "revocations.announce(",
    ];
    let mut found = mentions(
        "domain",
        &revoking,
        &["domain/revoker.rs", "domain/ports/store.rs"],
    );
    found.extend(mentions("grpc", &revoking, &[]));
    found.extend(mentions("app.rs", &revoking, &[]));
    assert!(
        found.is_empty(),
        "a session ends outside the revoker: {found:?}"
    );
}

#[test]
fn no_module_outgrows_a_few_screens() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut too_long = Vec::new();
    for dir in [
        "auth-service/src",
        "src",
        "authctl/src",
        "demo-services/src",
        "loadtest/src",
    ] {
        for (path, code) in sources(&workspace.join(dir)) {
            let lines = code.lines().count();
            if lines > 400 {
                too_long.push(format!("{}: {lines}", path.display()));
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "over 400 lines of non-test code: {too_long:?}"
    );
}
