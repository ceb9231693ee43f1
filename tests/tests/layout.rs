//! The workspace's shape, read from `cargo metadata`: the library and the desktop app compile
//! no command-line crates (the `murmur` command lives in `cli/`).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// Crates that only a command line needs.
const CLI_ONLY: [&str; 2] = ["clap", "indicatif"];

/// The workspace's dependency graph: package names by id, and each package's dependencies
/// that are compiled for it (normal and build, not dev).
struct Graph {
    names: HashMap<String, String>,
    deps: HashMap<String, Vec<String>>,
}

impl Graph {
    fn read() -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--locked", "--offline"])
            .current_dir(&root)
            .output()
            .expect("cargo metadata runs");
        assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
        let str_of = |v: &Value| v.as_str().expect("a string").to_string();
        let names = v["packages"].as_array().unwrap().iter().map(|p| (str_of(&p["id"]), str_of(&p["name"]))).collect();
        let compiled = |dep: &&Value| dep["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].as_str() != Some("dev"));
        let deps = v["resolve"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (str_of(&n["id"]), n["deps"].as_array().unwrap().iter().filter(compiled).map(|d| str_of(&d["pkg"])).collect())
            })
            .collect();
        Self { names, deps }
    }

    /// The names of every package `name` compiles, itself included.
    fn compiled_by(&self, name: &str) -> HashSet<&str> {
        let start = self.names.iter().find(|(_, n)| *n == name).map(|(id, _)| id).unwrap_or_else(|| panic!("no package {name}"));
        let (mut seen, mut todo) = (HashSet::new(), vec![start]);
        while let Some(id) = todo.pop() {
            if seen.insert(id) {
                todo.extend(self.deps.get(id).into_iter().flatten());
            }
        }
        seen.into_iter().map(|id| self.names[id].as_str()).collect()
    }
}

/// `murmur-core` and `murmur-app` compile neither clap nor indicatif; `murmur-cli` compiles both
/// (so the check reads the graph it means to).
#[test]
fn the_library_and_the_app_compile_no_command_line_crates() {
    let graph = Graph::read();
    for package in ["murmur-core", "murmur-app"] {
        let compiled = graph.compiled_by(package);
        let found: Vec<&str> = CLI_ONLY.into_iter().filter(|c| compiled.contains(c)).collect();
        assert!(found.is_empty(), "{package} compiles {found:?}, which only the command line (cli/) should");
    }
    let cli = graph.compiled_by("murmur-cli");
    assert!(CLI_ONLY.iter().all(|c| cli.contains(c)), "murmur-cli should compile {CLI_ONLY:?}");
}
