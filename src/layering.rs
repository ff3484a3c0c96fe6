//! Checks the layout rule of `lib.rs`'s `# Layout` on the source itself: a top-level module uses
//! only the modules listed before it, no command uses another command, no two modules (files)
//! use each other (directly or around a longer circle), and every module is named in the
//! Layout. Test code (`#[cfg(test)]` modules and files) is left out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The commands: none may use another.
const COMMANDS: [&str; 5] = ["wal_push", "wal_fetch", "backup", "restore", "ops"];

/// A module's path below the crate root, `["repo", "layout"]`.
type Module = Vec<String>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/` with its module path.
fn files() -> Vec<(Module, PathBuf)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&src(), &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(src()).unwrap().with_extension("");
            let mut m: Module = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
            if m.last().is_some_and(|l| l == "mod" || l == "lib") {
                m.pop();
            }
            (m, p)
        })
        .collect()
}

/// The code of a file without comments, string and char literals, and test modules.
fn code(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i = text[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
        } else if b[i] == b'r' && (b.get(i + 1) == Some(&b'#') || b.get(i + 1) == Some(&b'"')) {
            let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let start = i + 1 + hashes + 1;
            i = text[start..].find(&close).map_or(b.len(), |e| start + e + close.len());
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            i += 3;
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            i = text[i + 2..].find('\'').map_or(b.len(), |e| i + 2 + e + 1);
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    // Test modules (`#[cfg(test)]` or `#[cfg(all(test, …))]` then `mod x {`) come last in a file.
    let lines: Vec<&str> = out.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let is_test_cfg = l.starts_with("#[cfg(test)]") || l.starts_with("#[cfg(all(test");
        let next = lines.get(i + 1).map_or("", |n| n.trim());
        if is_test_cfg && next.contains("mod ") && next.ends_with('{') {
            return lines[..i].join("\n");
        }
    }
    out
}

/// The child modules a file declares, and which of them are test-only.
fn children(code: &str) -> (Vec<String>, Vec<String>) {
    let (mut all, mut tests) = (Vec::new(), Vec::new());
    let lines: Vec<&str> = code.lines().map(str::trim).collect();
    for (i, l) in lines.iter().enumerate() {
        let decl = l.strip_prefix("pub mod ").or_else(|| l.strip_prefix("mod "));
        if let Some(name) = decl.and_then(|d| d.strip_suffix(';')) {
            all.push(name.to_string());
            if i > 0 && lines[i - 1] == "#[cfg(test)]" {
                tests.push(name.to_string());
            }
        }
    }
    (all, tests)
}

/// Tokens: identifiers, `::`, and single punctuation characters.
fn tokens(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let c: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < c.len() {
        if c[i].is_alphanumeric() || c[i] == '_' {
            let s = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(c[s..i].iter().collect());
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else {
            if !c[i].is_whitespace() {
                out.push(c[i].to_string());
            }
            i += 1;
        }
    }
    out
}

/// Every path the tokens name: `use` trees expanded, other `a::b::c` runs as they stand.
fn paths(t: &[String]) -> Vec<Vec<String>> {
    fn tree(t: &[String], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut p = prefix.to_vec();
        loop {
            match t.get(*i).map(String::as_str) {
                Some("{") => {
                    *i += 1;
                    loop {
                        tree(t, i, &p, out);
                        match t.get(*i).map(String::as_str) {
                            Some(",") => *i += 1,
                            Some("}") => {
                                *i += 1;
                                return;
                            }
                            _ => return,
                        }
                        if t.get(*i).map(String::as_str) == Some("}") {
                            *i += 1;
                            return;
                        }
                    }
                }
                Some(s) if s.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                    p.push(s.to_string());
                    *i += 1;
                    if t.get(*i).map(String::as_str) == Some("::") {
                        *i += 1;
                        continue;
                    }
                    if t.get(*i).map(String::as_str) == Some("as") {
                        *i += 2;
                    }
                    out.push(p);
                    return;
                }
                Some("*") => {
                    *i += 1;
                    out.push(p);
                    return;
                }
                _ => {
                    out.push(p);
                    return;
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        if t[i] == "use" {
            i += 1;
            tree(t, &mut i, &[], &mut out);
            continue;
        }
        if t.get(i + 1).map(String::as_str) == Some("::")
            && t[i].chars().all(|c| c.is_alphanumeric() || c == '_')
        {
            let mut p = vec![t[i].clone()];
            let mut j = i + 1;
            while t.get(j).map(String::as_str) == Some("::") && t.get(j + 1).is_some() {
                p.push(t[j + 1].clone());
                j += 2;
            }
            out.push(p);
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

struct Crate {
    /// Every non-test module, with what it uses (other modules, resolved to files).
    uses: BTreeMap<Module, BTreeSet<Module>>,
}

fn read_crate() -> Crate {
    let files = files();
    let mut code_of = BTreeMap::new();
    let mut test_only: BTreeSet<Module> = BTreeSet::new();
    let mut kids: BTreeMap<Module, Vec<String>> = BTreeMap::new();
    for (m, p) in &files {
        let c = code(&std::fs::read_to_string(p).unwrap());
        let (all, tests) = children(&c);
        for t in tests {
            let mut child = m.clone();
            child.push(t);
            test_only.insert(child);
        }
        kids.insert(m.clone(), all);
        code_of.insert(m.clone(), c);
    }
    let known: BTreeSet<Module> = code_of.keys().cloned().collect();
    // The longest known module a path starts with.
    let resolve = |from: &Module, path: &[String]| -> Option<Module> {
        let mut abs: Vec<String> = match path.first().map(String::as_str) {
            Some("crate") => path[1..].to_vec(),
            Some("super") => {
                let mut base = from.clone();
                let mut rest = path;
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop();
                    rest = &rest[1..];
                }
                base.extend(rest.iter().cloned());
                base
            }
            Some("self") => from.iter().chain(&path[1..]).cloned().collect(),
            Some(first) if kids.get(from).is_some_and(|k| k.iter().any(|c| c == first)) => {
                from.iter().chain(path).cloned().collect()
            }
            _ => return None,
        };
        while !abs.is_empty() {
            if known.contains(&abs) {
                return Some(abs);
            }
            abs.pop();
        }
        None
    };
    let mut uses = BTreeMap::new();
    for (m, c) in &code_of {
        if test_only.iter().any(|t| m.starts_with(t)) || m.is_empty() {
            continue;
        }
        let used: BTreeSet<Module> = paths(&tokens(c))
            .iter()
            .filter_map(|p| resolve(m, p))
            .filter(|u| u != m && !test_only.iter().any(|t| u.starts_with(t)))
            .collect();
        uses.insert(m.clone(), used);
    }
    Crate { uses }
}

/// The top-level modules in the order `lib.rs`'s `# Layout` lists them (its `- [`name`]` lines).
fn layout_order() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let doc: Vec<&str> = lib.lines().filter_map(|l| l.strip_prefix("//!")).collect();
    doc.iter()
        .skip_while(|l| l.trim() != "# Layout")
        .filter_map(|l| l.trim().strip_prefix("- [`")?.split('`').next().map(str::to_string))
        .collect()
}

#[test]
fn every_module_uses_only_layers_listed_before_it_and_no_command_uses_another() {
    let order = layout_order();
    let c = read_crate();
    let tops: BTreeSet<String> = c.uses.keys().map(|m| m[0].clone()).collect();
    for t in &tops {
        assert!(order.contains(t), "lib.rs's # Layout does not list module `{t}`");
    }
    let rank = |m: &Module| order.iter().position(|o| *o == m[0]).unwrap();
    let mut wrong = Vec::new();
    for (m, used) in &c.uses {
        for u in used {
            let (a, b) = (&m[0], &u[0]);
            if a == b {
                continue;
            }
            if COMMANDS.contains(&a.as_str()) && COMMANDS.contains(&b.as_str()) {
                wrong.push(format!("the command {} uses the command {}", m.join("::"), u.join("::")));
            } else if rank(u) > rank(m) {
                wrong.push(format!("{} uses {}, a layer listed after it", m.join("::"), u.join("::")));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_two_modules_use_each_other() {
    let c = read_crate();
    // Every circle shows as a module that can reach itself; report the shortest for each.
    let mut circles = BTreeSet::new();
    for start in c.uses.keys() {
        let mut prev: BTreeMap<Module, Module> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.clone()]);
        'search: while let Some(m) = queue.pop_front() {
            for u in c.uses.get(&m).into_iter().flatten() {
                if u == start {
                    let mut circle = vec![start.join("::"), m.join("::")];
                    let mut at = m.clone();
                    while let Some(p) = prev.get(&at) {
                        circle.push(p.join("::"));
                        at = p.clone();
                    }
                    circle.pop();
                    circle.reverse();
                    circle.insert(0, start.join("::"));
                    circle.dedup();
                    let mut key = circle.clone();
                    key.sort();
                    circles.insert((key, circle.join(" -> ")));
                    break 'search;
                }
                if !prev.contains_key(u) && u != start {
                    prev.insert(u.clone(), m.clone());
                    queue.push_back(u.clone());
                }
            }
        }
    }
    let found: Vec<String> = circles.into_iter().map(|(_, c)| c).collect();
    assert!(found.is_empty(), "modules that use each other:\n{}", found.join("\n"));
}

#[test]
fn the_layout_names_every_module() {
    // Top-level modules and their direct submodules in lib.rs's # Layout; deeper ones (and the
    // private ones of replication/, format/, backup/, restore/) in their folder's `mod.rs`.
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let c = read_crate();
    let mut missing = Vec::new();
    for m in c.uses.keys() {
        let full = m.join("::");
        if lib.contains(&format!("[`{full}`]")) {
            continue;
        }
        let parent = src().join(m[..m.len() - 1].join("/")).join("mod.rs");
        let parent_doc: String = std::fs::read_to_string(&parent)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("//!"))
            .collect();
        let last = m.last().unwrap();
        if m.len() == 1
            || !(parent_doc.contains(&format!("[`{last}`]")) || parent_doc.contains(&format!("`{last}`")))
        {
            missing.push(full);
        }
    }
    assert!(missing.is_empty(), "modules no Layout names: {}", missing.join(", "));
}

#[test]
fn the_checker_sees_uses_in_use_trees_and_paths() {
    let t = tokens(
        "use crate::repo::{Storage, layout::{self, WalDir}};\nuse super::x as y;\nfn f() { crate::units::human(1); }",
    );
    let p: Vec<String> = paths(&t).iter().map(|p| p.join("::")).collect();
    for want in
        ["crate::repo::Storage", "crate::repo::layout::self", "crate::repo::layout::WalDir", "super::x"]
    {
        assert!(p.contains(&want.to_string()), "{want} in {p:?}");
    }
    assert!(p.contains(&"crate::units::human".to_string()), "{p:?}");
    assert_eq!(code("a // crate::x\n\"crate::y\" b"), "a \n\"\" b");
}
