//! `SECURITY.md` lists every network entry point of every Vox binary with who may call it
//! and what limits it has. A table like that is only worth something while it is
//! complete, so this test holds it against the code:
//!
//! - every RPC in the descriptor set (`vox_proto::FILE_DESCRIPTOR_SET`) of a package a
//!   binary serves (`vox.backend.v1` → voxbridge, `vox.fleet.v1` → voxcore,
//!   `vox.dialler.v1` → voxdialler) has a row in that binary's section;
//! - every HTTP route in the binary's sources (`.route("…", get(…).post(…))`, test code
//!   left out) has a row with its path exactly as in the source and the same methods;
//!   voxgate's console fallback is `GET /*`;
//! - `grpc.health.v1.Health/*` and `grpc.reflection/*` have a row wherever the sources
//!   build a health or reflection service;
//! - no row names an entry point the binary no longer serves.
//!
//! A failure names each missing, stale or wrong row, its section, and the line to write.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test stops at the first failure")]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use prost::Message;

/// A binary that listens, the packages it serves and where its sources are.
struct Binary {
    name: &'static str,
    packages: &'static [&'static str],
    source_dirs: &'static [&'static str],
}

const BINARIES: &[Binary] = &[
    Binary { name: "voxbridge", packages: &["vox.backend.v1"], source_dirs: &["backend/src"] },
    Binary { name: "voxgate", packages: &[], source_dirs: &["gateway/src", "gateway/rest/src"] },
    Binary { name: "voxcore", packages: &["vox.fleet.v1"], source_dirs: &["fleet/src"] },
    Binary { name: "voxdialler", packages: &["vox.dialler.v1"], source_dirs: &["dialler/src"] },
    Binary { name: "voxsim", packages: &[], source_dirs: &["ops/voxsim/src"] },
];

/// Router fallbacks that answer every other path: (binary, source file, the entry).
const FALLBACKS: &[(&str, &str, &str)] = &[("voxgate", "gateway/src/console.rs", "GET /*")];

/// The header every section's table starts with.
const TABLE_HEADER: &str = "| Entry point | Who may call it and how it is checked | Limits |";

const HEALTH: &str = "grpc.health.v1.Health/*";
const REFLECTION: &str = "grpc.reflection/*";

/// Code that builds the health service (`tonic_health`), in a binary's sources.
const HEALTH_MARKERS: &[&str] = &["health_reporter("];
/// Code that builds the reflection services: `tonic_reflection`'s builder, or Vox's one
/// helper for it (`vox_node::reflection::services`).
const REFLECTION_MARKERS: &[&str] = &["build_v1(", "build_v1alpha(", "reflection::services("];

/// axum's method routers, as the table spells them.
const METHODS: &[&str] = &["get", "post", "put", "patch", "delete", "head", "options", "trace", "connect", "any"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository").to_path_buf()
}

/// An entry point as a row names it, or as the code has it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// `GET, POST /api/v1/users`. Empty methods: the code's were not found (not checked).
    Http { methods: BTreeSet<String>, path: String },
    /// `vox.backend.v1.CallService/TransitionCall`, `grpc.health.v1.Health/*`.
    Rpc(String),
}

impl Entry {
    /// What a row is matched by: the path or the full method name.
    fn key(&self) -> &str {
        match self {
            Entry::Http { path, .. } => path,
            Entry::Rpc(name) => name,
        }
    }

    /// The entry as the table's first column spells it (without the backticks).
    fn spelled(&self) -> String {
        match self {
            Entry::Http { methods, path } if methods.is_empty() => format!("<METHODS> {path}"),
            Entry::Http { methods, path } => {
                format!("{} {path}", methods.iter().cloned().collect::<Vec<_>>().join(", "))
            }
            Entry::Rpc(name) => name.clone(),
        }
    }
}

/// An entry point the code serves, and where it comes from.
#[derive(Debug, Clone)]
struct Served {
    entry: Entry,
    origin: String,
}

/// A row of SECURITY.md.
#[derive(Debug, Clone)]
struct Row {
    entry: Entry,
    line: usize,
}

// ---------------------------------------------------------------------------------------
// SECURITY.md
// ---------------------------------------------------------------------------------------

/// Parses the first column of a row: exactly one backticked entry.
fn parse_entry(cell: &str) -> Result<Entry, String> {
    let cell = cell.trim();
    let inner = cell
        .strip_prefix('`')
        .and_then(|c| c.strip_suffix('`'))
        .filter(|c| !c.contains('`') && !c.trim().is_empty())
        .ok_or_else(|| format!("the first column must be exactly one backticked entry point, not {cell:?}"))?;
    if let Some(slash) = inner.find(" /") {
        let (methods, path) = (&inner[..slash], inner[slash + 1..].trim());
        let mut set = BTreeSet::new();
        for m in methods.split(',').map(str::trim) {
            if !METHODS.iter().any(|known| known.eq_ignore_ascii_case(m)) || m != m.to_ascii_uppercase() {
                return Err(format!(
                    "`{inner}`: {m:?} is not an HTTP method; write them in capitals, comma-separated \
                     (`GET, POST /path`; `ANY` for every method)"
                ));
            }
            set.insert(m.to_string());
        }
        if path.contains(char::is_whitespace) {
            return Err(format!("`{inner}`: the path has spaces; write the path exactly as in `.route(\"…\")`"));
        }
        return Ok(Entry::Http { methods: set, path: path.to_string() });
    }
    if inner.starts_with('/') {
        return Err(format!("`{inner}`: an HTTP entry needs its methods first, e.g. `GET {inner}`"));
    }
    let well_formed = match inner.split_once('/') {
        Some((service, method)) => {
            service.contains('.')
                && !service.contains(char::is_whitespace)
                && !method.is_empty()
                && (method == "*" || method.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        }
        None => false,
    };
    if !well_formed {
        return Err(format!(
            "`{inner}` is neither `METHOD /path` nor a gRPC method `package.Service/Method` (or `{HEALTH}`, `{REFLECTION}`)"
        ));
    }
    Ok(Entry::Rpc(inner.to_string()))
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

fn is_separator(line: &str) -> bool {
    let c = cells(line);
    !c.is_empty() && c.iter().all(|cell| !cell.is_empty() && cell.chars().all(|ch| matches!(ch, '-' | ':' | ' ')))
}

/// The rows of each binary's section (`## <binary> …`), keyed by binary; problems found
/// on the way are pushed to `problems`.
fn documented(text: &str, problems: &mut Vec<String>) -> BTreeMap<String, Vec<Row>> {
    let mut sections: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut in_fence = false;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let number = i + 1;
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        if let Some(heading) = line.strip_prefix("## ") {
            let first = heading.split_whitespace().next().unwrap_or_default().trim_matches('`');
            current = BINARIES.iter().any(|b| b.name == first).then(|| first.to_string());
            if let Some(name) = &current {
                if sections.contains_key(name) {
                    problems.push(format!("SECURITY.md:{number}: a second `## {name}` section; keep one per binary"));
                }
                sections.entry(name.clone()).or_default();
            }
            continue;
        }
        if line.starts_with("# ") {
            current = None;
            continue;
        }
        let Some(section) = &current else { continue };
        if !line.trim_start().starts_with('|') || is_separator(line) {
            continue;
        }
        if lines.get(i + 1).is_some_and(|next| is_separator(next)) {
            if cells(line) != cells(TABLE_HEADER) {
                problems.push(format!(
                    "SECURITY.md:{number}: `## {section}`'s table header must be `{TABLE_HEADER}`, not `{}`",
                    line.trim()
                ));
            }
            continue;
        }
        let row = cells(line);
        if row.len() != 3 || row.iter().any(String::is_empty) {
            problems.push(format!(
                "SECURITY.md:{number}: `## {section}`: a row needs three filled columns (entry point, who may call \
                 it and how it is checked, limits); found {} in `{}`",
                row.iter().filter(|c| !c.is_empty()).count(),
                line.trim()
            ));
        }
        match parse_entry(&row[0]) {
            Ok(entry) => sections.get_mut(section).expect("section was opened").push(Row { entry, line: number }),
            Err(why) => problems.push(format!("SECURITY.md:{number}: `## {section}`: {why}")),
        }
    }
    sections
}

// ---------------------------------------------------------------------------------------
// The code: RPCs from the descriptor set, routes from the sources
// ---------------------------------------------------------------------------------------

/// Every `package.Service/Method` of the descriptor set, by package.
fn rpcs() -> BTreeMap<String, Vec<String>> {
    let set = prost_types::FileDescriptorSet::decode(vox_proto::FILE_DESCRIPTOR_SET)
        .expect("vox_proto::FILE_DESCRIPTOR_SET decodes");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                out.entry(file.package().to_string()).or_default().push(format!(
                    "{}.{}/{}",
                    file.package(),
                    service.name(),
                    method.name()
                ));
            }
        }
    }
    out
}

/// `src` with comments blanked out (newlines kept, so offsets keep their line numbers);
/// string and character literals are kept as they are.
fn without_comments(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let (mut depth, mut j) = (1, i + 2);
                while j < b.len() && depth > 0 {
                    if b[j] == b'/' && b.get(j + 1) == Some(&b'*') {
                        depth += 1;
                        j += 2;
                    } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
                        depth -= 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                blank(&mut out, i, j);
                i = j;
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#')) && (i == 0 || !is_ident(b[i - 1])) => {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                let body = i + 2 + hashes;
                i = b[body..]
                    .windows(close.len())
                    .position(|w| w == close.as_slice())
                    .map_or(b.len(), |p| body + p + close.len());
            }
            b'"' => i = string_end(b, i),
            b'\'' => {
                // A character literal ('x', '\n', '\''), or a lifetime ('a), left as is.
                if b.get(i + 1) == Some(&b'\\') {
                    i = b[i + 2..].iter().position(|&c| c == b'\'').map_or(b.len(), |p| i + 2 + p + 1);
                } else if let Some(ch) = src[i + 1..].chars().next()
                    && b.get(i + 1 + ch.len_utf8()) == Some(&b'\'')
                {
                    i += 2 + ch.len_utf8();
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    String::from_utf8(out).expect("only ASCII was replaced")
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The index just past the string literal that opens at `start` (a `"`).
fn string_end(b: &[u8], start: usize) -> usize {
    let mut j = start + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return j + 1,
            _ => j += 1,
        }
    }
    b.len()
}

/// The index of the `)` that closes the `(` at `open`, skipping string literals.
fn closing_paren(b: &[u8], open: usize) -> usize {
    let mut depth = 0;
    let mut j = open;
    while j < b.len() {
        match b[j] {
            b'"' => {
                j = string_end(b, j);
                continue;
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
        j += 1;
    }
    b.len()
}

/// Identifiers directly followed by `(` in `code`, outside string literals.
fn calls_in(code: &str) -> Vec<&str> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut j = 0;
    while j < b.len() {
        if b[j] == b'"' {
            j = string_end(b, j);
            continue;
        }
        if is_ident(b[j]) && (j == 0 || !is_ident(b[j - 1])) {
            let start = j;
            while j < b.len() && is_ident(b[j]) {
                j += 1;
            }
            if b.get(j) == Some(&b'(') {
                out.push(&code[start..j]);
            }
            continue;
        }
        j += 1;
    }
    out
}

/// The body of `fn name(` in `code`, if the file defines one.
fn local_fn_body<'a>(code: &'a str, name: &str) -> Option<&'a str> {
    let at = code.find(&format!("fn {name}("))?;
    let open = at + code[at..].find('{')?;
    let b = code.as_bytes();
    let mut depth = 0;
    for (j, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&code[open..=j]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The HTTP methods a route's method router serves: `get(…).post(…)`, also through a
/// helper function of the same file (`route(any_unknown())`).
fn methods_of(handler: &str, file: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for name in calls_in(handler) {
        if METHODS.contains(&name) {
            out.insert(name.to_ascii_uppercase());
        } else if let Some(body) = local_fn_body(file, name) {
            out.extend(calls_in(body).into_iter().filter(|n| METHODS.contains(n)).map(str::to_ascii_uppercase));
        }
    }
    out
}

/// The routes one source file declares: `.route(` followed by a string literal.
fn routes_in(code: &str, shown: &str) -> Vec<Served> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find(".route(") {
        let open = from + found + ".route".len();
        from = open + 1;
        let literal = open + 1 + code[open + 1..].len() - code[open + 1..].trim_start().len();
        if b.get(literal) != Some(&b'"') {
            continue;
        }
        let end = string_end(b, literal);
        let path = code[literal + 1..end - 1].to_string();
        let close = closing_paren(b, open);
        let methods = methods_of(&code[end..close.min(code.len())], code);
        let line = code[..literal].matches('\n').count() + 1;
        out.push(Served { entry: Entry::Http { methods, path }, origin: format!("{shown}:{line}") });
    }
    out
}

/// A source file as the binary runs it: no comments, and nothing from the first
/// `#[cfg(test)]` on (test modules sit at the end of a file).
fn non_test_code(src: &str) -> String {
    let code = without_comments(src);
    match code.find("#[cfg(test)]") {
        Some(at) => code[..at].to_string(),
        None => code,
    }
}

/// The `.rs` files under `dir`, without `tests/` folders and `tests.rs` files.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() {
            if name != "tests" {
                sources(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") && name != "tests.rs" {
            out.push(path);
        }
    }
}

/// Everything `binary` serves, keyed by path or method name.
fn served(root: &Path, binary: &Binary, rpcs: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, Served> {
    let mut out: BTreeMap<String, Served> = BTreeMap::new();
    let mut add = |s: Served| match out.get_mut(s.entry.key()) {
        // The same path declared twice (merged routers): the methods add up.
        Some(Served { entry: Entry::Http { methods, .. }, origin }) => {
            if let Entry::Http { methods: more, .. } = s.entry {
                methods.extend(more);
            }
            origin.push_str(&format!(", {}", s.origin));
        }
        Some(_) => {}
        None => {
            out.insert(s.entry.key().to_string(), s);
        }
    };
    for package in binary.packages {
        for rpc in rpcs.get(*package).into_iter().flatten() {
            add(Served { entry: Entry::Rpc(rpc.clone()), origin: format!("the descriptor set, package {package}") });
        }
    }
    for dir in binary.source_dirs {
        let mut files = Vec::new();
        sources(&root.join(dir), &mut files);
        for file in files {
            let shown = file.strip_prefix(root).unwrap_or(&file).display().to_string();
            let code = non_test_code(&std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {shown}: {e}")));
            for route in routes_in(&code, &shown) {
                add(route);
            }
            if HEALTH_MARKERS.iter().any(|m| code.contains(m)) {
                add(Served { entry: Entry::Rpc(HEALTH.into()), origin: format!("{shown} (tonic_health)") });
            }
            if REFLECTION_MARKERS.iter().any(|m| code.contains(m)) {
                add(Served { entry: Entry::Rpc(REFLECTION.into()), origin: format!("{shown} (reflection)") });
            }
            for (owner, fallback_file, entry) in FALLBACKS {
                if *owner == binary.name && shown == *fallback_file && code.contains(".fallback(") {
                    add(Served {
                        entry: parse_entry(&format!("`{entry}`")).expect("a well-formed fallback entry"),
                        origin: format!("{shown} (the router's fallback)"),
                    });
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The comparison
// ---------------------------------------------------------------------------------------

/// Every way `rows` (one binary's section) disagree with what the binary serves.
fn compare(binary: &str, rows: &[Row], served: &BTreeMap<String, Served>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for row in rows {
        if let Some(first) = seen.insert(row.entry.key(), row.line) {
            problems.push(format!(
                "SECURITY.md:{}: `## {binary}` lists `{}` again (first on line {first}); keep one row per entry point",
                row.line,
                row.entry.key()
            ));
        }
        match served.get(row.entry.key()) {
            None => problems.push(format!(
                "SECURITY.md:{}: `## {binary}` lists `{}`, which {binary} does not serve (not in its routes or its \
                 packages' RPCs); remove the row, or correct it to the path or method name as the code spells it",
                row.line,
                row.entry.spelled()
            )),
            Some(s) => {
                if let (Entry::Http { methods: listed, .. }, Entry::Http { methods: code, .. }) = (&row.entry, &s.entry)
                    && !code.is_empty()
                    && listed != code
                {
                    problems.push(format!(
                        "SECURITY.md:{}: `## {binary}` lists `{}`, but the route ({}) serves {}; write `{}`",
                        row.line,
                        row.entry.spelled(),
                        s.origin,
                        code.iter().cloned().collect::<Vec<_>>().join(", "),
                        s.entry.spelled()
                    ));
                }
            }
        }
    }
    for (key, s) in served {
        if !seen.contains_key(key.as_str()) {
            problems.push(format!(
                "`## {binary}` in SECURITY.md has no row for `{}` (from {}); add to its table: \
                 | `{}` | <who may call it and how it is checked> | <its limits> |",
                s.entry.spelled(),
                s.origin,
                s.entry.spelled()
            ));
        }
    }
    problems
}

#[test]
fn security_md_lists_every_entry_point_of_every_binary() {
    let root = repo_root();
    let path = root.join("SECURITY.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let rpcs = rpcs();
    for b in BINARIES {
        for package in b.packages {
            assert!(
                rpcs.get(*package).is_some_and(|r| !r.is_empty()),
                "the descriptor set has no RPCs in {package}; has the package been renamed? (update BINARIES here)"
            );
        }
    }

    let mut problems = Vec::new();
    let sections = documented(&text, &mut problems);
    for b in BINARIES {
        let served = served(&root, b, &rpcs);
        assert!(
            !served.is_empty(),
            "found no entry point of {} in {:?}: the scanner is broken or the sources moved (update BINARIES here)",
            b.name,
            b.source_dirs
        );
        match sections.get(b.name) {
            Some(rows) => problems.extend(compare(b.name, rows, &served)),
            None => problems.push(format!(
                "SECURITY.md has no `## {}` section; add one with the table `{TABLE_HEADER}` and a row for each of: {}",
                b.name,
                served.values().map(|s| format!("`{}`", s.entry.spelled())).collect::<Vec<_>>().join(", ")
            )),
        }
    }
    let mut report = String::new();
    for p in &problems {
        let _ = writeln!(report, "- {p}");
    }
    assert!(problems.is_empty(), "SECURITY.md does not match the code ({} problems):\n{report}", problems.len());
}

/// The scanner itself, on a source that has every shape the real ones use.
#[test]
fn the_scanner_reads_routes_methods_and_skips_comments_and_tests() {
    let src = r#"
        // .route("/commented", get(x))
        /* .route("/block", get(x)) */
        fn any_unknown() -> MethodRouter { axum::routing::any(|| async { "no" }) }
        fn route(m: MethodRouter) -> MethodRouter { m.fallback(|| async { ')' }) }
        pub fn router() -> Router {
            Router::new()
                .route("/a", get(a).post(b))
                .route(
                    "/b/{id}",
                    route(patch(users::update).delete(users::delete).layer(Limit::max(3))),
                )
                .route("/c/{*rest}", any_unknown())
                .route("/d", axum::routing::post(crate::inbound::twilio_voice))
                .route("/e", get(|| async { "get(\")" }))
        }
        #[cfg(test)]
        mod tests { fn t() { Router::new().route("/test-only", get(t)); } }
    "#;
    let code = non_test_code(src);
    let found: Vec<String> = routes_in(&code, "x.rs").into_iter().map(|s| s.entry.spelled()).collect();
    assert_eq!(found, ["GET, POST /a", "DELETE, PATCH /b/{id}", "ANY /c/{*rest}", "POST /d", "GET /e"]);

    for (cell, ok) in [
        ("`GET, POST /api/v1/users`", true),
        ("`vox.backend.v1.CallService/TransitionCall`", true),
        ("`grpc.health.v1.Health/*`", true),
        ("`get /x`", false),
        ("`/x`", false),
        ("`GET /x` `POST /x`", false),
        ("GET /x", false),
        ("`CallService`", false),
    ] {
        assert_eq!(parse_entry(cell).is_ok(), ok, "{cell}: {:?}", parse_entry(cell));
    }
}
