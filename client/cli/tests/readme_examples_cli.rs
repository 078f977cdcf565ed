//! The README's examples, run (issue 13: "the README's examples are all tested"). The
//! `raftkv` binary's unit test `every_raftkv_command_of_the_readme_parses` only parses
//! them; this test runs them against a real three-node cluster, in README order, so the
//! state an example sets up is what a later one reads.
//!
//! - **Which lines.** Every line of a ```sh block whose command is the CLI (`raftkv` or a
//!   path ending in `/raftkv`, such as `target/release/raftkv`), and every `$ raftkv ...`
//!   line of a ```text block (a transcript: the lines after it are its output). Lines
//!   run by default: a new README line is run unless it is in `SKIPPED`, with a reason.
//!   `raftkv-node`, `cargo`, `kubectl ... -- raftkv` and scripts are not the CLI's lines;
//!   the few non-CLI lines later examples depend on are acted out (`ACTED`).
//! - **How.** Each line runs through `sh -c` as written, in a work directory holding
//!   `target/release/raftkv` (and `raftkv` on `PATH`), so quoting, redirections (`> copy.jpg`)
//!   and `&&` work as in a shell. The README's addresses (`127.0.0.1:7101` = node 1's
//!   client port, `:7001` peer, `:7201` ops) become the cluster's, `/tmp/raftkv/certs` its
//!   certificates, other absolute paths (`/tmp/raftkv/`, `/backups/`) directories under
//!   the work directory, and relative ones land in it. `RAFTKV_ENDPOINTS` and
//!   `RAFTKV_TLS_*` are set as the README's `export` line sets them: the cluster runs
//!   mutual TLS, as the README's does. A file an example reads (`--value-file photo.jpg`)
//!   is made (binary, not UTF-8) when it is not there.
//! - **What is checked.** Each line's exit code: 0 unless `EXIT_CODES` says otherwise,
//!   with a reason. When the README shows an example's output (the comment lines right
//!   after it in a ```sh block, or a transcript's lines), its JSON objects must match a
//!   line of the real output field by field (numbers, being revisions and indexes, only as
//!   numbers) and its other words must be in the real output (words with digits, such as
//!   ids, revisions, sizes and paths, left out). A value written from a file and read
//!   back with `get --raw > FILE` must come back byte for byte.
//! - **Help.** The `Example:` line of a few subcommands' `--help` and the `Examples:` of
//!   `raftkv --help` run the same way, after the README's.
//!
//! Every table entry must name a line that exists, so a stale one fails too. To see the
//! test catch a wrong example, break a README line (say `--expected hello` into
//! `--expected hallo`): it fails naming the line, its exit code and its output.

// It runs real processes: not in simulation.
#![cfg(not(madsim))]

mod real_cluster;

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use client::local_cluster::{LocalCluster, LocalClusterOptions};
use real_cluster::{describe, node_binary, temporary_dir};
use serde_json::Value;

const README: &str = include_str!("../../../README.md");

/// README lines not run, each with why (the line as written, its comment off).
const SKIPPED: &[(&str, &str)] = &[(
    "target/release/raftkv bench --local --mix writes --clients 16",
    "starts a second three-node cluster of its own and measures it for 10 s (the default \
     --duration-secs) after a warm-up: a benchmark, with no answer to check; \
     bench_cli.rs beside this test runs `raftkv bench`",
)];

/// Examples whose documented exit code is not 0.
const EXIT_CODES: &[(&str, i32, &str)] = &[(
    "raftkv cas greeting --expected hello --new bye",
    4,
    "`raftkv cas --help`'s example, run after the README's own cas already swapped greeting \
     to bye: the comparison fails (exit 4, nothing written)",
)];

/// Flags added at the end of an example that would not end by itself.
const ADDED_FLAGS: &[(&str, &str, &str)] = &[(
    "raftkv watch app/ --from-revision 1 --output json",
    "--max-events 1",
    "watch follows its prefix until interrupted; the README shows the one event it prints",
)];

/// `raftkv` arguments run before an example that reads what no earlier example writes.
const SETUP: &[(&str, &[&str], &str)] = &[(
    "raftkv watch app/ --from-revision 1 --output json",
    &["put", "app/a", "1"],
    "its output shows the put of app/a = 1 (YXBwL2E=, MQ==), which no earlier example makes",
)];

/// What the test does for a README line that is not the CLI's.
#[derive(Debug, Clone, Copy)]
enum Act {
    /// Start the node the line starts (a node not in `--peers`, which joins by itself),
    /// and wait until it is a voter, as the member list the README shows next has it.
    JoinNode,
}

/// Non-CLI README lines acted out (by how the line starts), because later examples
/// depend on them.
const ACTED: &[(&str, Act, &str)] = &[(
    "target/release/raftkv-node --id 4 ",
    Act::JoinNode,
    "`member list` and `member remove 4` after it need node 4 to have joined",
)];

/// Subcommands whose `--help` example runs (after the README's). `cas` first: after the
/// README, greeting holds bye.
const HELP_EXAMPLES: &[&[&str]] = &[
    &["cas"],
    &["get"],
    &["list"],
    &["put"],
    &["watch"],
    &["member", "list"],
    &["endpoint", "health"],
    &["status"],
    &["dump"],
    &["snapshot", "save"],
];

/// Longest any one example may take.
const EXAMPLE_TIMEOUT: Duration = Duration::from_secs(30);

/// One line to run, from the README or a `--help`.
#[derive(Debug, Clone)]
struct Example {
    /// `README.md:LINE` or the help it came from.
    source: String,
    /// The command as written, its comment off.
    code: String,
    /// The output the README shows for it, a line each.
    shown: Vec<String>,
}

impl Example {
    fn is_cli(&self) -> bool {
        is_cli(&self.code)
    }
}

fn is_cli(code: &str) -> bool {
    code.split_whitespace()
        .next()
        .is_some_and(|program| program == "raftkv" || program.ends_with("/raftkv"))
}

/// The line up to its comment (a `#` at the start or after a blank), and the comment.
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let bytes = line.as_bytes();
    for (index, byte) in bytes.iter().enumerate() {
        if *byte == b'#' && (index == 0 || bytes[index - 1].is_ascii_whitespace()) {
            return (line[..index].trim(), Some(line[index + 1..].trim()));
        }
    }
    (line.trim(), None)
}

/// Every command line of the README's ```sh blocks (continuations joined) with the
/// comment lines right after it, and every `$ ` line of its ```text blocks with the lines
/// after it, in README order.
fn readme_examples() -> Vec<Example> {
    let lines: Vec<&str> = README.lines().collect();
    let mut examples = Vec::new();
    let mut block: Option<&str> = None;
    let mut index = 0;
    while index < lines.len() {
        let number = index + 1;
        let trimmed = lines[index].trim();
        index += 1;
        if let Some(language) = trimmed.strip_prefix("```") {
            block = match block {
                None => Some(language.trim()),
                Some(_) => None,
            };
            continue;
        }
        match block {
            Some("sh") => {
                let mut logical = trimmed.to_string();
                while logical.ends_with('\\') && index < lines.len() {
                    logical.pop();
                    logical.push(' ');
                    logical.push_str(lines[index].trim());
                    index += 1;
                }
                let (code, _) = split_comment(&logical);
                if code.is_empty() {
                    continue;
                }
                let mut shown = Vec::new();
                if is_cli(code) {
                    while let Some(output) = lines.get(index).and_then(|line| line.trim().strip_prefix("# "))
                    {
                        shown.push(output.to_string());
                        index += 1;
                    }
                }
                examples.push(Example {
                    source: format!("README.md:{number}"),
                    code: code.to_string(),
                    shown,
                });
            }
            Some("text") => {
                let Some(command) = trimmed.strip_prefix("$ ") else {
                    continue;
                };
                let mut shown = Vec::new();
                while let Some(line) = lines.get(index) {
                    if line.trim_start().starts_with("```") || line.starts_with("$ ") {
                        break;
                    }
                    shown.push(line.to_string());
                    index += 1;
                }
                examples.push(Example {
                    source: format!("README.md:{number} (transcript)"),
                    code: command.trim().to_string(),
                    shown,
                });
            }
            _ => {}
        }
    }
    examples
}

/// `raftkv ARGS --help`.
fn help(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(args)
        .arg("--help")
        .env_remove("RUST_LOG")
        .output()
        .expect("run raftkv --help");
    assert!(
        output.status.success(),
        "raftkv {args:?} --help: {}",
        describe(&output)
    );
    String::from_utf8(output.stdout).expect("help is UTF-8")
}

/// The `Example:` line of each of `HELP_EXAMPLES`, then the `Examples:` of `raftkv --help`.
fn help_examples() -> Vec<Example> {
    let mut examples = Vec::new();
    for args in HELP_EXAMPLES {
        let source = format!("raftkv {} --help", args.join(" "));
        let text = help(args);
        let line = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("Example: "))
            .unwrap_or_else(|| panic!("`{source}` prints no Example: line:\n{text}"));
        examples.extend(line.split("; ").map(|code| Example {
            source: source.clone(),
            code: code.trim().to_string(),
            shown: Vec::new(),
        }));
    }
    let text = help(&[]);
    let listed: Vec<&str> = text
        .lines()
        .skip_while(|line| line.trim() != "Examples:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .collect();
    assert!(!listed.is_empty(), "`raftkv --help` lists no examples:\n{text}");
    examples.extend(listed.into_iter().map(|code| Example {
        source: "raftkv --help".to_string(),
        code: code.trim().to_string(),
        shown: Vec::new(),
    }));
    examples
}

fn lookup<'t, T>(table: &'t [(&str, T, &str)], code: &str) -> Option<&'t T> {
    table
        .iter()
        .find(|(line, _, _)| *line == code)
        .map(|(_, value, _)| value)
}

/// Every table entry names a line there is, and says why.
fn check_tables(examples: &[Example]) {
    let codes: BTreeSet<&str> = examples.iter().map(|example| example.code.as_str()).collect();
    let exact = SKIPPED
        .iter()
        .map(|(line, reason)| (*line, *reason))
        .chain(EXIT_CODES.iter().map(|(line, _, reason)| (*line, *reason)))
        .chain(ADDED_FLAGS.iter().map(|(line, _, reason)| (*line, *reason)))
        .chain(SETUP.iter().map(|(line, _, reason)| (*line, *reason)));
    for (line, reason) in exact {
        assert!(
            codes.contains(line),
            "a table names `{line}`, which no example is (stale?)"
        );
        assert!(!reason.trim().is_empty(), "`{line}` has no reason");
    }
    for (start, _, reason) in ACTED {
        assert!(
            codes.iter().any(|code| code.starts_with(start)),
            "ACTED names `{start}...`, which no README line is (stale?)"
        );
        assert!(!reason.trim().is_empty(), "`{start}` has no reason");
    }
}

/// Words of `text` as the output check compares them: edges of punctuation off.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace()
        .map(|word| word.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_')))
        .filter(|word| !word.is_empty())
}

/// The words of shown output that must be in the real one: none with a digit (ids,
/// revisions, sizes, dates), and no long hex (incarnations, checksums).
fn stable_words(text: &str) -> Vec<&str> {
    words(text)
        .filter(|word| !word.chars().any(|c| c.is_ascii_digit()))
        .filter(|word| !(word.len() >= 8 && word.chars().all(|c| c.is_ascii_hexdigit())))
        .collect()
}

/// A JSON object the README shows, against one of the real output: the same fields, the
/// same values but for numbers (revisions, indexes), which need only be numbers.
fn json_matches(shown: &Value, real: &Value) -> bool {
    let (Some(shown), Some(real)) = (shown.as_object(), real.as_object()) else {
        return false;
    };
    shown.len() == real.len()
        && shown.iter().all(|(field, value)| match real.get(field) {
            Some(real_value) if value.is_number() => real_value.is_number(),
            Some(real_value) => real_value == value,
            None => false,
        })
}

/// What is wrong with `stdout` against the output the README shows, if anything.
fn output_mismatch(shown: &[String], stdout: &str) -> Option<String> {
    let real_lines: Vec<Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let real_words: BTreeSet<&str> = words(stdout).collect();
    let mut wrong = Vec::new();
    for line in shown {
        match serde_json::from_str::<Value>(line) {
            Ok(object) if object.is_object() => {
                if !real_lines.iter().any(|real| json_matches(&object, real)) {
                    wrong.push(format!("no output line matches the JSON {line}"));
                }
            }
            _ => {
                let missing: Vec<&str> = stable_words(line)
                    .into_iter()
                    .filter(|word| !real_words.contains(word))
                    .collect();
                if !missing.is_empty() {
                    wrong.push(format!("the output lacks {missing:?} of `{line}`"));
                }
            }
        }
    }
    (!wrong.is_empty()).then(|| wrong.join("; "))
}

/// Replaces each pattern once, left to right over the text (no replacement is looked at
/// again: a cluster port may equal another README port).
fn replace_all(text: &str, patterns: &[(String, String)]) -> String {
    let mut result = String::new();
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for (pattern, replacement) in patterns {
            if let Some(after) = rest.strip_prefix(pattern.as_str()) {
                result.push_str(replacement);
                rest = after;
                continue 'scan;
            }
        }
        let next = rest.chars().next().expect("not empty");
        result.push(next);
        rest = &rest[next.len_utf8()..];
    }
    result
}

/// An input file's bytes: like a JPEG's start, not UTF-8.
fn input_bytes() -> Vec<u8> {
    let mut bytes = vec![0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10];
    bytes.extend((0..3000u32).map(|index| (index * 7 % 256) as u8));
    bytes
}

#[derive(Debug)]
struct Run {
    cluster: LocalCluster,
    work: PathBuf,
    path: String,
    failures: Vec<String>,
    ran: usize,
    skipped: usize,
}

impl Run {
    fn patterns(&self) -> Vec<(String, String)> {
        let mut patterns = vec![
            (
                "/tmp/raftkv/certs".to_string(),
                self.cluster.certs_dir().display().to_string(),
            ),
            (
                "/tmp/raftkv/".to_string(),
                format!("{}/", self.work.join("tmp-raftkv").display()),
            ),
            (
                "/backups/".to_string(),
                format!("{}/", self.work.join("backups").display()),
            ),
        ];
        for node in self.cluster.nodes() {
            for (base, address) in [
                (7000, &node.peer_address),
                (7100, &node.client_address),
                (7200, &node.http_address),
            ] {
                patterns.push((format!("127.0.0.1:{}", base + node.id), address.clone()));
            }
        }
        patterns
    }

    /// `sh -c LINE` in the work directory, as the README's shell would run it, killed
    /// (its process group) after `EXAMPLE_TIMEOUT`.
    fn shell(&self, line: &str) -> Result<Output, String> {
        let certs = self.cluster.certs_dir();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(line)
            .current_dir(&self.work)
            .env("PATH", &self.path)
            .env("RAFTKV_ENDPOINTS", self.cluster.endpoints()[..3].join(","))
            .env("RAFTKV_TLS_CERT", certs.join("client.crt"))
            .env("RAFTKV_TLS_KEY", certs.join("client.key"))
            .env("RAFTKV_TLS_CA", certs.join("ca.crt"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|error| format!("cannot run sh: {error}"))?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let out = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stdout.read_to_end(&mut bytes);
            bytes
        });
        let err = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stderr.read_to_end(&mut bytes);
            bytes
        });
        let deadline = Instant::now() + EXAMPLE_TIMEOUT;
        let mut timed_out = false;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|error| error.to_string())? {
                break status;
            }
            if Instant::now() > deadline {
                timed_out = true;
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                break child.wait().map_err(|error| error.to_string())?;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let output = Output {
            status,
            stdout: out.join().expect("stdout reader"),
            stderr: err.join().expect("stderr reader"),
        };
        if timed_out {
            return Err(format!(
                "did not exit within {EXAMPLE_TIMEOUT:?}; {}",
                describe(&output)
            ));
        }
        Ok(output)
    }

    /// `raftkv ARGS` with the environment the examples get.
    fn raftkv(&self, args: &[&str]) -> Output {
        let line = std::iter::once("raftkv")
            .chain(args.iter().copied())
            .map(|word| format!("'{word}'"))
            .collect::<Vec<_>>()
            .join(" ");
        self.shell(&line)
            .unwrap_or_else(|error| panic!("raftkv {args:?}: {error}"))
    }

    /// Makes every file the line reads that is not there.
    fn make_inputs(&self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            if ["--value-file", "--expected-file", "--new-file"].contains(&pair[0]) && pair[1] != "-" {
                let path = self.work.join(pair[1]);
                if !path.exists() {
                    fs::create_dir_all(path.parent().expect("a parent")).expect("input dir");
                    fs::write(&path, input_bytes()).expect("input file");
                }
            }
        }
    }

    fn member_roles(&self) -> Vec<(u64, String)> {
        let output = self.raftkv(&["--timeout-ms", "2000", "--output", "json", "member", "list"]);
        if !output.status.success() {
            return Vec::new();
        }
        let list: Value = serde_json::from_slice(&output.stdout).expect("member list JSON");
        list["members"]
            .as_array()
            .map(|members| {
                members
                    .iter()
                    .map(|member| {
                        (
                            member["id"].as_u64().unwrap_or_default(),
                            member["role"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn act(&mut self, example: &Example, act: Act) {
        match act {
            Act::JoinNode => {
                let id = self.cluster.add_node().expect("lay out a node");
                let named = format!("--id {id} ");
                assert!(
                    example.code.contains(&named),
                    "{}: the README starts another node than {id}: {}",
                    example.source,
                    example.code
                );
                self.cluster.start_node(id).expect("start the joining node");
                let deadline = Instant::now() + Duration::from_secs(40);
                while !self.member_roles().contains(&(id, "voter".to_string())) {
                    assert!(
                        Instant::now() < deadline,
                        "{}: node {id} never became a voter; its log:\n{}",
                        example.source,
                        self.cluster.log_of(id)
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                eprintln!("{}: acted out (node {id} joined as a voter)", example.source);
            }
        }
    }

    fn example(&mut self, example: &Example) {
        if !example.is_cli() {
            if let Some((_, act, _)) = ACTED.iter().find(|(start, _, _)| example.code.starts_with(start)) {
                self.act(example, *act);
            }
            return;
        }
        if let Some((_, reason)) = SKIPPED.iter().find(|(line, _)| *line == example.code) {
            eprintln!("{}: skipped `{}`: {reason}", example.source, example.code);
            self.skipped += 1;
            return;
        }
        if let Some(setup) = lookup(SETUP, &example.code) {
            let output = self.raftkv(setup);
            assert!(output.status.success(), "setup {setup:?}: {}", describe(&output));
        }
        let mut line = replace_all(&example.code, &self.patterns());
        if let Some(flags) = lookup(ADDED_FLAGS, &example.code) {
            assert!(
                !["|", ">", "&&", ";"]
                    .iter()
                    .any(|operator| line.contains(operator)),
                "flags go at the end of a single command: {line}"
            );
            line = format!("{line} {flags}");
        }
        self.make_inputs(&line);
        let expected = lookup(EXIT_CODES, &example.code).copied().unwrap_or(0);
        let started = Instant::now();
        let output = match self.shell(&line) {
            Ok(output) => output,
            Err(error) => {
                self.failures
                    .push(format!("{}: `{}` {error}", example.source, example.code));
                return;
            }
        };
        self.ran += 1;
        let code = output.status.code();
        eprintln!(
            "{}: `{}` exit {code:?} in {} ms",
            example.source,
            example.code,
            started.elapsed().as_millis()
        );
        if code != Some(expected) {
            self.failures.push(format!(
                "{}: `{}` (run as `{line}`) should exit {expected}; {}",
                example.source,
                example.code,
                describe(&output)
            ));
            return;
        }
        let shown: Vec<String> = example
            .shown
            .iter()
            .map(|line| replace_all(line, &self.patterns()))
            .collect();
        if let Some(mismatch) = output_mismatch(&shown, &String::from_utf8_lossy(&output.stdout)) {
            self.failures.push(format!(
                "{}: `{}` does not print what the README shows: {mismatch}; {}",
                example.source,
                example.code,
                describe(&output)
            ));
        }
    }
}

#[test]
fn every_readme_example_runs_against_a_real_cluster() {
    let Some(node_binary) = node_binary() else {
        eprintln!(
            "SKIPPED: no raftkv-node beside raftkv; run `cargo test --workspace` or set RAFTKV_NODE_BIN"
        );
        return;
    };
    let started = Instant::now();
    let readme = readme_examples();
    let help = help_examples();
    let all: Vec<Example> = readme.iter().chain(&help).cloned().collect();
    check_tables(&all);
    let cli_lines = readme.iter().filter(|example| example.is_cli()).count();
    assert!(
        cli_lines >= 15,
        "only {cli_lines} CLI lines found in the README: {readme:#?}"
    );

    let directory = temporary_dir("readme-examples");
    let work = directory.join("work");
    for dir in ["bin", "target/release", "backups", "tmp-raftkv"] {
        fs::create_dir_all(work.join(dir)).expect("work dirs");
    }
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_raftkv"));
    for link in [work.join("bin/raftkv"), work.join("target/release/raftkv")] {
        std::os::unix::fs::symlink(&binary, link).expect("link raftkv");
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let cluster = LocalCluster::start(LocalClusterOptions {
        node_binary,
        base_dir: directory.join("cluster"),
        size: 3,
        cluster_name: "readme-examples".into(),
        tick_ms: 20,
        snapshot_every: 1_000,
        extra_args: Vec::new(),
        tls: true,
    })
    .expect("start a local cluster");
    let mut run = Run {
        cluster,
        path: format!("{}:{path}", work.join("bin").display()),
        work: work.clone(),
        failures: Vec::new(),
        ran: 0,
        skipped: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !run
        .raftkv(&["--timeout-ms", "2000", "endpoint", "health"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "the cluster never became healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("cluster serving after {} ms", started.elapsed().as_millis());

    for example in &readme {
        run.example(example);
    }
    // A value put from a file and read back with `get --raw > FILE` is the file's bytes.
    let (photo, copy) = (work.join("photo.jpg"), work.join("copy.jpg"));
    if README.contains("> copy.jpg") {
        match (fs::read(&photo), fs::read(&copy)) {
            (Ok(photo), Ok(copy)) if photo == copy => {}
            (photo, copy) => run.failures.push(format!(
                "copy.jpg is not photo.jpg's bytes: photo {:?} bytes, copy {:?} bytes",
                photo.map(|bytes| bytes.len()),
                copy.map(|bytes| bytes.len())
            )),
        }
    }
    let readme_ran = run.ran;
    for example in &help {
        run.example(example);
    }
    eprintln!(
        "{readme_ran} README examples and {} help examples ran, {} skipped, in {} ms",
        run.ran - readme_ran,
        run.skipped,
        started.elapsed().as_millis()
    );
    assert!(
        run.failures.is_empty(),
        "{} example(s) failed:\n\n{}",
        run.failures.len(),
        run.failures.join("\n\n")
    );
    drop(run);
    let _ = fs::remove_dir_all(&directory);
}
