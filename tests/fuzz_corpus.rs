//! The fuzz targets' short run inside the test suite: each target's check (`fuzz/checks.rs`, the
//! same code the cargo-fuzz targets run) over its seed corpus (the real payloads in
//! `tests/fixtures/`, plus any inputs kept in `fuzz/regressions/<target>/`) and then a bounded number
//! of deterministic mutations of those seeds. No coverage guidance: `scripts/fuzz.sh` runs the
//! real fuzzer for longer.
//!
//! A failing input is written to `target/fuzz-failures/` so it can be replayed with
//! `cargo fuzz run <target> <file>` and kept in `fuzz/regressions/<target>/` once fixed.

#[allow(dead_code)] // the table of targets is what this file uses
#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

const MUTATIONS_PER_TARGET: usize = 20_000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_in(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    paths.sort();
    paths.into_iter().filter(|p| p.is_file()).filter_map(|p| std::fs::read(p).ok()).collect()
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let fixtures = root().join("tests/fixtures");
    let mut seeds = match target {
        "signatures" => {
            // header, second header, body: as the target splits its input.
            let body = files_in(&fixtures.join("generic")).remove(0);
            let t = 1_795_424_400; // 2026-11-23T09:00:00Z, the check's "now"
            let generic = firstcall::intake::signature::sign_generic(b"fuzz-secret-0123456789", t, &body);
            let basic = "Basic cGlwZWRyaXZlOmZ1enotcGFzc3dvcmQtMQ==".to_string();
            [generic, basic, "t=1,v1=00".into(), String::new()]
                .into_iter()
                .map(|h| [h.as_bytes(), b"\n", b"1795424400000", b"\n", &body].concat())
                .collect()
        }
        other => files_in(&fixtures.join(other.trim_start_matches("parse_"))),
    };
    seeds.extend(files_in(&root().join("fuzz/regressions").join(target)));
    assert!(!seeds.is_empty(), "no seeds for {target}");
    seeds
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens that matter to JSON, XML, signature headers and numbers.
const TOKENS: &[&str] = &[
    "\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "null",
    "true",
    "-1",
    "0",
    "1e999",
    "-9223372036854775809",
    "\"\\u0000\"",
    "\\",
    "<",
    ">",
    "</",
    "<![CDATA[",
    "&amp;",
    "&#0;",
    "=",
    "t=",
    ",v1=",
    "Basic ",
    "\u{feff}",
    "\u{2028}",
    "é",
    "\r\n",
    " ",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => data.insert(at, rng.next() as u8),
            2 => data.splice(at..at, TOKENS[rng.below(TOKENS.len())].bytes()).for_each(drop),
            3 if at < data.len() => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at..end);
            }
            4 if at < data.len() => {
                let end = (at + 1 + rng.below(64)).min(data.len());
                let copy = data[at..end].to_vec();
                data.splice(at..at, copy).for_each(drop);
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            _ => data.truncate(at),
        }
    }
    data
}

fn run(target: &str) {
    let check = checks::TARGETS.iter().find(|(name, _)| *name == target).map(|(_, f)| *f).expect("a known target");
    let seeds = seeds(target);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    let inputs = seeds.clone().into_iter().chain((0..MUTATIONS_PER_TARGET).map(|_| mutate(&mut rng, &seeds)));
    for (n, input) in inputs.enumerate() {
        if std::panic::catch_unwind(|| check(&input)).is_err() {
            let dir = root().join("target/fuzz-failures");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{target}-{n}"));
            let _ = std::fs::write(&path, &input);
            panic!("{target} failed on input {n}, saved to {}: {:?}", path.display(), String::from_utf8_lossy(&input));
        }
    }
}

#[test]
fn parse_generic_holds_on_its_corpus_and_mutations() {
    run("parse_generic");
}

#[test]
fn parse_hubspot_holds_on_its_corpus_and_mutations() {
    run("parse_hubspot");
}

#[test]
fn parse_pipedrive_holds_on_its_corpus_and_mutations() {
    run("parse_pipedrive");
}

#[test]
fn parse_salesforce_holds_on_its_corpus_and_mutations() {
    run("parse_salesforce");
}

#[test]
fn signatures_hold_on_their_corpus_and_mutations() {
    run("signatures");
}

#[test]
fn parse_notes_holds_on_its_corpus_and_mutations() {
    run("parse_notes");
}
