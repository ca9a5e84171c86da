//! Shared harness for the known-answer suites: a per-suite tally that prints its case
//! count (libtest-mimic does not capture stdout, so the line shows in `cargo test`),
//! fails on any failed case, and fails unless exactly the expected number of cases ran.

#![allow(dead_code)] // each test binary uses a different subset of these helpers

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use libtest_mimic::{Failed, Trial};

/// Path of a file under `testvectors/data/`.
pub(crate) fn data_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(rel)
}

/// Reads a data file as UTF-8, with the path in the error.
pub(crate) fn read_data(rel: &str) -> Result<String, Failed> {
    let p = data_path(rel);
    std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()).into())
}

/// Decodes hex, ignoring whitespace; the error names the field.
pub(crate) fn unhex(s: &str) -> Result<Vec<u8>, Failed> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(&clean).map_err(|e| format!("bad hex {s:?}: {e}").into())
}

/// Outcome tally for one suite (one data file, usually).
#[derive(Debug)]
pub(crate) struct Tally {
    name: String,
    /// Valid cases whose expected output we reproduced.
    pub(crate) valid_passed: usize,
    /// "acceptable" cases handled per the suite's documented policy.
    pub(crate) acceptable_passed: usize,
    /// Invalid cases we rejected.
    pub(crate) invalid_rejected: usize,
    skipped: BTreeMap<String, usize>,
    notes: BTreeMap<String, usize>,
    failures: Vec<String>,
    failed: usize,
}

impl Tally {
    /// A new, empty tally.
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            valid_passed: 0,
            acceptable_passed: 0,
            invalid_rejected: 0,
            skipped: BTreeMap::new(),
            notes: BTreeMap::new(),
            failures: Vec::new(),
            failed: 0,
        }
    }

    /// Records a case that is not run, with the reason (counted and printed).
    pub(crate) fn skip(&mut self, reason: &str) {
        *self.skipped.entry(reason.to_owned()).or_default() += 1;
    }

    /// Counts a detail worth printing (e.g. how "acceptable" cases went); not a case.
    pub(crate) fn note(&mut self, what: &str) {
        *self.notes.entry(what.to_owned()).or_default() += 1;
    }

    /// Records a failed case.
    pub(crate) fn fail(&mut self, case: impl std::fmt::Display, why: impl std::fmt::Display) {
        self.failed += 1;
        if self.failures.len() < 20 {
            self.failures.push(format!("{case}: {why}"));
        }
    }

    /// Records the outcome of a case expected to succeed.
    pub(crate) fn valid(&mut self, case: impl std::fmt::Display, r: Result<(), String>) {
        match r {
            Ok(()) => self.valid_passed += 1,
            Err(e) => self.fail(case, e),
        }
    }

    /// Records the outcome of an "acceptable" case, already judged against the policy.
    pub(crate) fn acceptable(&mut self, case: impl std::fmt::Display, r: Result<(), String>) {
        match r {
            Ok(()) => self.acceptable_passed += 1,
            Err(e) => self.fail(case, e),
        }
    }

    /// Records the outcome of a case that must be rejected: `accepted` says whether our
    /// code accepted it.
    pub(crate) fn invalid(&mut self, case: impl std::fmt::Display, accepted: bool) {
        if accepted {
            self.fail(case, "invalid input was accepted");
        } else {
            self.invalid_rejected += 1;
        }
    }

    /// Cases that ran (passed or failed), excluding skipped ones.
    pub(crate) fn ran(&self) -> usize {
        self.valid_passed + self.acceptable_passed + self.invalid_rejected + self.failed
    }

    fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }

    /// Prints the suite line and turns the tally into the trial result: fails on any
    /// failed case, on zero cases, or unless `expected_total` cases (ran + skipped) were
    /// seen and `expected_ran` of them ran.
    pub(crate) fn finish(self, expected_total: usize, expected_ran: usize) -> Result<(), Failed> {
        let total = self.ran() + self.skipped_total();
        let mut line = format!("{}: {} cases (", self.name, total);
        let mut parts = Vec::new();
        if self.valid_passed > 0 {
            parts.push(format!("{} valid passed", self.valid_passed));
        }
        if self.acceptable_passed > 0 {
            parts.push(format!("{} acceptable per policy", self.acceptable_passed));
        }
        if self.invalid_rejected > 0 {
            parts.push(format!("{} invalid rejected", self.invalid_rejected));
        }
        if self.failed > 0 {
            parts.push(format!("{} FAILED", self.failed));
        }
        for (why, n) in &self.skipped {
            parts.push(format!("{n} skipped: {why}"));
        }
        line.push_str(&parts.join(", "));
        line.push(')');
        if !self.notes.is_empty() {
            let notes: Vec<String> = self.notes.iter().map(|(k, n)| format!("{n} {k}")).collect();
            line.push_str(&format!(" [{}]", notes.join(", ")));
        }
        println!("{line}");

        let mut err = String::new();
        if self.failed > 0 {
            let _ = writeln!(err, "{}: {} case(s) failed:", self.name, self.failed);
            for f in &self.failures {
                let _ = writeln!(err, "  {f}");
            }
        }
        if self.ran() == 0 {
            let _ = writeln!(err, "{}: no case ran", self.name);
        }
        if total != expected_total || self.ran() != expected_ran {
            let _ = writeln!(
                err,
                "{}: expected {expected_total} cases with {expected_ran} run, saw {total} with {} run",
                self.name,
                self.ran()
            );
        }
        if err.is_empty() {
            Ok(())
        } else {
            Err(err.into())
        }
    }
}

/// Wraps a suite function as a libtest-mimic trial.
pub(crate) fn trial(name: &str, f: impl FnOnce() -> Result<(), Failed> + Send + 'static) -> Trial {
    Trial::test(name, f)
}

/// Runs the trials with the command-line arguments cargo passed, and exits accordingly.
pub(crate) fn run(trials: Vec<Trial>) -> ! {
    let args = libtest_mimic::Arguments::from_args();
    libtest_mimic::run(&args, trials).exit()
}

/// One record of a NIST CAVP response file: the `[section]` values in force plus the
/// `KEY = value` lines (keys upper-cased); a bare line (e.g. `FAIL`) is stored with an
/// empty value.
#[derive(Debug, Clone, Default)]
pub(crate) struct RspRecord {
    /// Section values (`[Keylen = 128]` -> "KEYLEN" => "128", `[ENCRYPT]` -> "ENCRYPT" => "").
    pub(crate) section: BTreeMap<String, String>,
    /// The last `[...]` line seen before the record, verbatim (e.g. `EC - SHA256`).
    pub(crate) last_section: String,
    /// Fields of the record.
    pub(crate) fields: BTreeMap<String, String>,
}

impl RspRecord {
    /// A field, or an error naming it.
    pub(crate) fn get(&self, k: &str) -> Result<&str, Failed> {
        self.fields
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("record lacks {k}: {:?}", self.fields).into())
    }

    /// A field decoded from hex.
    pub(crate) fn hex(&self, k: &str) -> Result<Vec<u8>, Failed> {
        unhex(self.get(k)?)
    }

    /// Whether a bare flag line (like `FAIL`) is present.
    pub(crate) fn has(&self, k: &str) -> bool {
        self.fields.contains_key(k)
    }
}

/// Parses a CAVP `.rsp`/`.fax` file into records. A record starts at a `COUNT` line;
/// `[...]` lines update the section state (a `[ENCRYPT]`/`[DECRYPT]` line replaces the
/// other).
pub(crate) fn parse_rsp(text: &str) -> Vec<RspRecord> {
    let mut section: BTreeMap<String, String> = BTreeMap::new();
    let mut out: Vec<RspRecord> = Vec::new();
    let mut cur: Option<RspRecord> = None;
    let mut last_section = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(inner) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if let Some(r) = cur.take() {
                out.push(r);
            }
            inner.trim().clone_into(&mut last_section);
            let (k, v) = match inner.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_uppercase(), v.trim().to_owned()),
                None => (inner.trim().to_ascii_uppercase(), String::new()),
            };
            if k == "ENCRYPT" || k == "DECRYPT" {
                section.remove("ENCRYPT");
                section.remove("DECRYPT");
            }
            section.insert(k, v);
            continue;
        }
        let (k, v) = match line.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_uppercase(), v.trim().to_owned()),
            None => (line.to_ascii_uppercase(), String::new()),
        };
        if k == "COUNT" {
            if let Some(r) = cur.take() {
                out.push(r);
            }
            cur = Some(RspRecord {
                section: section.clone(),
                last_section: last_section.clone(),
                fields: BTreeMap::new(),
            });
        }
        if let Some(r) = cur.as_mut() {
            r.fields.insert(k, v);
        }
    }
    if let Some(r) = cur.take() {
        out.push(r);
    }
    out
}
