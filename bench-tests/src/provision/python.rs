//! Python provisioning: finds (or builds) a CPython >= 3.12 interpreter and a venv holding the
//! exact pins of `fixtures/python/requirements.txt`.
//!
//! Interpreter search order, first that works wins:
//! 1. `$BENCH_PYTHON` — if set, it must be a working Python >= 3.12 (else an error, no fallback);
//! 2. `python3.14`, `python3.13`, `python3.12` on `PATH` (each actually run; pyenv shims that
//!    fail are skipped silently);
//! 3. the cached build `cache_dir()/python-3.13/bin/python3.13`;
//! 4. pyenv versions (`$PYENV_ROOT` or `~/.pyenv`, `versions/3.12+/bin/python3`), highest first;
//! 5. building CPython 3.13 with `infra/python/build-cpython.sh cache_dir()/python-3.13`.
//!
//! "Works" means: it runs within a bounded time, reports a version >= 3.12 and imports
//! `ssl`, `ctypes`, `sqlite3`, `venv` and `ensurepip` (needed to create the venv).
//!
//! The venv lives at `cache_dir()/venv-<key>`, the key hashing the requirements file, the
//! interpreter path and its version; it is reused when its `.tasq-bench-ready` marker exists
//! (written only after a successful `pip install`). A lock file serializes concurrent builders.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::fs::{self, File, TryLockError};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Lowest supported Python (AsyncTasQ needs 3.12+).
pub const MIN_PYTHON: (u32, u32) = (3, 12);
/// The minor version that `build-cpython.sh` builds and that the cache holds.
pub const BUILT_MINOR: &str = "3.13";
/// Marker written into a venv after its `pip install` succeeded.
pub const READY_MARKER: &str = ".tasq-bench-ready";
/// Requirements lock, relative to the project root.
pub const REQUIREMENTS: &str = "fixtures/python/requirements.txt";
/// Build script, relative to the project root.
pub const BUILD_SCRIPT: &str = "infra/python/build-cpython.sh";

const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
const VENV_CREATE_TIMEOUT: Duration = Duration::from_secs(180);
const PIP_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const BUILD_TIMEOUT: Duration = Duration::from_secs(60 * 60);
const PACKAGES_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for another process that holds the venv lock (it is bounded by
/// `VENV_CREATE_TIMEOUT + PIP_TIMEOUT` itself).
const LOCK_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// A provisioned Python: the base interpreter and a venv with the pinned packages.
#[derive(Debug, Clone)]
pub struct PythonEnv {
    /// The base interpreter the venv was made from.
    pub interpreter: PathBuf,
    /// The venv directory.
    pub venv: PathBuf,
    /// `venv/bin/python`.
    pub python: PathBuf,
    /// The interpreter's version, e.g. `"3.13.5"`.
    pub version: String,
    /// How the interpreter was found: `"BENCH_PYTHON"`, `"PATH python3.13"`,
    /// `"cache /root/.cache/tasq-bench/python-3.13"`, `"pyenv 3.13.0"`, `"built from source"`.
    pub source: String,
    /// Installed distributions of the venv, name (normalized: lowercase, `-` separators,
    /// e.g. `"typing-extensions"`) to version.
    pub packages: BTreeMap<String, String>,
}

impl PythonEnv {
    /// Finds or builds the interpreter and creates/refreshes the venv. `progress` receives
    /// human-readable lines.
    pub fn provision(project_root: &Path, progress: &mut dyn FnMut(&str)) -> Result<PythonEnv> {
        let requirements_path = project_root.join(REQUIREMENTS);
        let requirements = fs::read(&requirements_path)
            .with_context(|| format!("reading {}", requirements_path.display()))?;
        let cache = cache_dir();
        let found = find_interpreter(
            &Search::from_env(project_root, &cache),
            std::env::var_os("BENCH_PYTHON"),
            progress,
        )?;
        progress(&format!(
            "python: {} (Python {}, {})",
            found.path.display(),
            found.version,
            found.source
        ));
        let key = venv_key(&requirements, &found.path, &found.version);
        let venv = cache.join(format!("venv-{key}"));
        let packages = ensure_venv(&found, &venv, &requirements_path, progress)?;
        Ok(PythonEnv {
            interpreter: found.path,
            python: venv.join("bin").join("python"),
            venv,
            version: found.version,
            source: found.source,
            packages,
        })
    }

    /// `venv/bin/<name>`.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.venv.join("bin").join(name)
    }
}

/// `$TASQ_BENCH_CACHE`, else `$XDG_CACHE_HOME/tasq-bench`, else `~/.cache/tasq-bench`.
pub fn cache_dir() -> PathBuf {
    let nonempty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = nonempty("TASQ_BENCH_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = nonempty("XDG_CACHE_HOME").map(PathBuf::from) {
        if dir.is_absolute() {
            return dir.join("tasq-bench");
        }
    }
    match nonempty("HOME") {
        Some(home) => PathBuf::from(home).join(".cache").join("tasq-bench"),
        None => std::env::temp_dir().join("tasq-bench-cache"),
    }
}

// ---------------------------------------------------------------------------------------------
// Versions

/// Parses `"3.13.5"`, `"3.14.0rc1"`, `"3.13.0t"`, `"3.12"` into (major, minor, micro); the
/// suffix after the micro digits is ignored.
pub fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let s = s.trim();
    let mut parts = s.splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor_str = parts.next()?;
    let minor_digits: String = minor_str
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let minor = minor_digits.parse().ok()?;
    let micro = match parts.next() {
        Some(rest) if minor_digits.len() == minor_str.len() => {
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()?
        }
        Some(_) => return None,
        None => 0,
    };
    Some((major, minor, micro))
}

/// Whether `version` is a Python this harness supports (>= 3.12).
pub fn version_supported(version: &str) -> bool {
    matches!(parse_version(version), Some((maj, min, _)) if (maj, min) >= MIN_PYTHON)
}

/// First 12 hex digits of sha256(requirements, interpreter path, version).
pub fn venv_key(requirements: &[u8], interpreter: &Path, version: &str) -> String {
    let mut h = Sha256::new();
    h.update(requirements);
    h.update([0u8]);
    h.update(interpreter.as_os_str().as_encoded_bytes());
    h.update([0u8]);
    h.update(version.as_bytes());
    h.finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Interpreter search

/// Where to look, so that tests can point the search elsewhere.
struct Search {
    path_names: Vec<String>,
    cached: PathBuf,
    pyenv_versions: Option<PathBuf>,
    build_script: Option<PathBuf>,
    build_prefix: PathBuf,
}

impl Search {
    fn from_env(project_root: &Path, cache: &Path) -> Search {
        let pyenv_root = std::env::var_os("PYENV_ROOT")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
        let prefix = cache.join(format!("python-{BUILT_MINOR}"));
        Search {
            path_names: ["python3.14", "python3.13", "python3.12"]
                .map(String::from)
                .to_vec(),
            cached: prefix.join("bin").join(format!("python{BUILT_MINOR}")),
            pyenv_versions: pyenv_root.map(|r| r.join("versions")),
            build_script: Some(project_root.join(BUILD_SCRIPT)),
            build_prefix: prefix,
        }
    }
}

#[derive(Debug, Clone)]
struct Found {
    path: PathBuf,
    version: String,
    source: String,
}

/// What the probe script reports about an interpreter.
#[derive(Debug, serde::Deserialize)]
struct ProbeReport {
    version: String,
    executable: String,
    missing: Vec<String>,
}

const PROBE_SCRIPT: &str = r#"
import json, platform, sys
missing = []
for name in ("ssl", "ctypes", "sqlite3", "venv", "ensurepip"):
    try:
        __import__(name)
    except Exception as e:
        missing.append("%s (%s)" % (name, e))
print(json.dumps({"version": platform.python_version(), "executable": sys.executable or "",
                  "missing": missing}))
"#;

/// Runs `candidate` and checks it is a usable Python >= 3.12. Returns the real executable
/// (a pyenv shim resolves to the interpreter behind it) and the version, or why not.
fn probe(candidate: &Path) -> std::result::Result<(PathBuf, String), String> {
    let mut cmd = Command::new(candidate);
    cmd.arg("-I").arg("-c").arg(PROBE_SCRIPT);
    let out = match run_bounded(&mut cmd, PROBE_TIMEOUT, None) {
        Ok(out) => out,
        Err(e) => return Err(format!("{e:#}")),
    };
    if !out.status.success() {
        return Err(format!(
            "exited with {}: {}",
            out.status,
            tail(&out.stderr, 3).trim()
        ));
    }
    let line = out.stdout.lines().rev().find(|l| l.starts_with('{'));
    let report: ProbeReport = match line.map(serde_json::from_str) {
        Some(Ok(r)) => r,
        _ => {
            return Err(format!(
                "did not answer like a Python 3 interpreter: {:?}",
                tail(&out.stdout, 2)
            ))
        }
    };
    if !version_supported(&report.version) {
        return Err(format!(
            "is Python {}; need {}.{} or newer",
            report.version, MIN_PYTHON.0, MIN_PYTHON.1
        ));
    }
    if !report.missing.is_empty() {
        return Err(format!(
            "is Python {} but cannot import: {}",
            report.version,
            report.missing.join(", ")
        ));
    }
    let exe = PathBuf::from(&report.executable);
    let path = if exe.is_absolute() && exe.exists() {
        exe
    } else {
        candidate.to_path_buf()
    };
    Ok((path, report.version))
}

/// pyenv versions >= 3.12 as (name, python3 path), highest version first.
fn pyenv_candidates(versions_dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(versions_dir) else {
        return Vec::new();
    };
    let mut found: Vec<((u32, u32, u32), String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let v = parse_version(&name)?;
            if (v.0, v.1) < MIN_PYTHON {
                return None;
            }
            let python = e.path().join("bin").join("python3");
            python.exists().then_some((v, name, python))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    found.into_iter().map(|(_, n, p)| (n, p)).collect()
}

fn find_interpreter(
    search: &Search,
    bench_python: Option<OsString>,
    progress: &mut dyn FnMut(&str),
) -> Result<Found> {
    if let Some(bp) = bench_python.filter(|v| !v.is_empty()) {
        let candidate = PathBuf::from(&bp);
        return match probe(&candidate) {
            Ok((path, version)) => Ok(Found {
                path,
                version,
                source: "BENCH_PYTHON".into(),
            }),
            Err(why) => bail!(
                "BENCH_PYTHON={} is not a usable Python {}.{}+: it {why}. Point BENCH_PYTHON at a \
                 python3.12 or newer (with ssl, ctypes, sqlite3 and venv), or unset it to let \
                 tasq-bench find or build one",
                candidate.display(),
                MIN_PYTHON.0,
                MIN_PYTHON.1
            ),
        };
    }

    let mut tried: Vec<String> = Vec::new();
    for name in &search.path_names {
        match probe(Path::new(name)) {
            Ok((path, version)) => {
                return Ok(Found {
                    path,
                    version,
                    source: format!("PATH {name}"),
                })
            }
            Err(why) => tried.push(format!("{name} on PATH: {why}")),
        }
    }

    if search.cached.exists() {
        match probe(&search.cached) {
            Ok((_, version)) => {
                // Keep the cache path itself (not a resolved symlink), so the venv key is stable.
                return Ok(Found {
                    path: search.cached.clone(),
                    version,
                    source: format!("cache {}", search.build_prefix.display()),
                });
            }
            Err(why) => tried.push(format!("{}: {why}", search.cached.display())),
        }
    } else {
        tried.push(format!("{}: not built yet", search.cached.display()));
    }

    if let Some(dir) = &search.pyenv_versions {
        let candidates = pyenv_candidates(dir);
        if candidates.is_empty() {
            tried.push(format!("pyenv: no 3.12+ version under {}", dir.display()));
        }
        for (name, python) in candidates {
            match probe(&python) {
                Ok((_, version)) => {
                    return Ok(Found {
                        path: python,
                        version,
                        source: format!("pyenv {name}"),
                    })
                }
                Err(why) => tried.push(format!("pyenv {}: {why}", python.display())),
            }
        }
    }

    let advice = "set BENCH_PYTHON=/path/to/python3.12-or-newer, or install python3.12+ on PATH, \
                  or set CPYTHON_SRC=/path/to/Python-3.13.x.tar.xz so that the build needs no \
                  download";
    let Some(script) = &search.build_script else {
        bail!(
            "no usable Python {}.{}+ found. Tried:\n  - {}\nTo fix: {advice}",
            MIN_PYTHON.0,
            MIN_PYTHON.1,
            tried.join("\n  - ")
        );
    };
    progress(&format!(
        "python: no usable Python {}.{}+ found; building CPython {BUILT_MINOR} into {} \
         (a few minutes)",
        MIN_PYTHON.0,
        MIN_PYTHON.1,
        search.build_prefix.display()
    ));
    let mut cmd = Command::new("bash");
    cmd.arg(script).arg(&search.build_prefix);
    let build = run_bounded(&mut cmd, BUILD_TIMEOUT, Some(progress));
    let why = match build {
        Ok(out) if out.status.success() => match probe(&search.cached) {
            Ok((_, version)) => {
                return Ok(Found {
                    path: search.cached.clone(),
                    version,
                    source: "built from source".into(),
                })
            }
            Err(why) => format!("the build finished but {}: {why}", search.cached.display()),
        },
        Ok(out) => format!(
            "{} exited with {}:\n{}",
            script.display(),
            out.status,
            tail(&format!("{}{}", out.stdout, out.stderr), 15)
        ),
        Err(e) => format!("{e:#}"),
    };
    bail!(
        "no usable Python {}.{}+ found and building one failed.\nTried:\n  - {}\nBuild: {why}\n\
         To fix: {advice}",
        MIN_PYTHON.0,
        MIN_PYTHON.1,
        tried.join("\n  - ")
    )
}

// ---------------------------------------------------------------------------------------------
// Venv

const PACKAGES_SCRIPT: &str = r#"
import json, re, importlib.metadata as md
out = {}
for d in md.distributions():
    name = d.metadata["Name"]
    if name:
        out[re.sub(r"[-_.]+", "-", name).lower()] = d.version
print(json.dumps(out))
"#;

/// Name -> version of every distribution installed in the venv of `python`.
fn read_packages(python: &Path) -> Result<BTreeMap<String, String>> {
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(PACKAGES_SCRIPT);
    let out = run_bounded(&mut cmd, PACKAGES_TIMEOUT, None)?;
    if !out.status.success() {
        bail!(
            "{} exited with {}: {}",
            python.display(),
            out.status,
            tail(&out.stderr, 5)
        );
    }
    let line = out.stdout.lines().rev().find(|l| l.starts_with('{'));
    let packages: BTreeMap<String, String> = serde_json::from_str(line.unwrap_or(""))
        .with_context(|| format!("parsing package list from {}", python.display()))?;
    // Every registered system's packages: a venv without one is rebuilt.
    if let Some(missing) = crate::systems::packages()
        .into_iter()
        .find(|p| !packages.contains_key(*p))
    {
        bail!("package {missing} is not installed in the venv");
    }
    Ok(packages)
}

/// Holds an exclusive lock on a file until dropped.
struct LockGuard(#[allow(dead_code)] File);

fn lock_exclusive(path: &Path, progress: &mut dyn FnMut(&str)) -> Result<LockGuard> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    let start = Instant::now();
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(LockGuard(file)),
            Err(TryLockError::WouldBlock) => {
                if !told {
                    progress(&format!(
                        "python: another process is preparing this venv; waiting (lock {})",
                        path.display()
                    ));
                    told = true;
                }
                if start.elapsed() > LOCK_TIMEOUT {
                    bail!(
                        "timed out after {:?} waiting for the lock {} (held by another tasq-bench \
                         process)",
                        LOCK_TIMEOUT,
                        path.display()
                    );
                }
                thread::sleep(Duration::from_millis(250));
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

/// Makes `venv` ready (reusing it when its marker is there and it answers) and returns its
/// packages.
fn ensure_venv(
    found: &Found,
    venv: &Path,
    requirements: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<BTreeMap<String, String>> {
    let python = venv.join("bin").join("python");
    let marker = venv.join(READY_MARKER);
    let parent = venv.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let mut lock_path = venv.as_os_str().to_owned();
    lock_path.push(".lock");
    let _lock = lock_exclusive(Path::new(&lock_path), progress)?;

    if marker.exists() {
        match read_packages(&python) {
            Ok(packages) => {
                progress(&format!("python: reusing venv {}", venv.display()));
                return Ok(packages);
            }
            Err(e) => progress(&format!(
                "python: venv {} is marked ready but broken ({e:#}); rebuilding it",
                venv.display()
            )),
        }
    }

    if venv.exists() {
        fs::remove_dir_all(venv)
            .with_context(|| format!("removing incomplete venv {}", venv.display()))?;
    }
    progress(&format!("python: creating venv {}", venv.display()));
    let mut cmd = Command::new(&found.path);
    cmd.arg("-m").arg("venv").arg(venv);
    let out = run_bounded(&mut cmd, VENV_CREATE_TIMEOUT, None)?;
    if !out.status.success() {
        bail!(
            "`{} -m venv {}` exited with {}:\n{}",
            found.path.display(),
            venv.display(),
            out.status,
            tail(&format!("{}{}", out.stdout, out.stderr), 20)
        );
    }

    progress(&format!(
        "python: pip install -r {} (pinned packages; a minute or two the first time)",
        requirements.display()
    ));
    let started = Instant::now();
    let mut cmd = Command::new(&python);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "-q",
        "-r",
    ])
    .arg(requirements)
    .env("PIP_NO_INPUT", "1");
    let out =
        run_bounded(&mut cmd, PIP_TIMEOUT, None).context("pip install of the requirements lock")?;
    if !out.status.success() {
        bail!(
            "pip install -r {} into {} exited with {}:\n{}",
            requirements.display(),
            venv.display(),
            out.status,
            tail(&format!("{}{}", out.stdout, out.stderr), 30)
        );
    }
    let packages = read_packages(&python).context("checking the new venv")?;
    fs::write(
        &marker,
        format!(
            "interpreter={}\nversion={}\nsource={}\nrequirements={}\n",
            found.path.display(),
            found.version,
            found.source,
            requirements.display()
        ),
    )
    .with_context(|| format!("writing {}", marker.display()))?;
    progress(&format!(
        "python: venv ready in {:.0}s ({} packages)",
        started.elapsed().as_secs_f64(),
        packages.len()
    ));
    Ok(packages)
}

// ---------------------------------------------------------------------------------------------
// Bounded child processes

struct Captured {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Lines kept per stream (the oldest are dropped).
const MAX_LINES: usize = 5000;

/// Runs `cmd` with stdin closed and stdout/stderr captured, in its own process group, killing
/// the whole group when `timeout` passes. With `on_line`, each output line (of either stream) is
/// passed to it as it arrives. Python-related variables that would redirect the interpreter
/// (PYTHONHOME, PYTHONPATH, VIRTUAL_ENV) are removed.
fn run_bounded(
    cmd: &mut Command,
    timeout: Duration,
    mut on_line: Option<&mut dyn FnMut(&str)>,
) -> Result<Captured> {
    let what = format!("{:?}", cmd.get_program());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONPATH")
        .env_remove("VIRTUAL_ENV")
        .process_group(0);
    let mut child = cmd.spawn().with_context(|| format!("starting {what}"))?;
    let pid = child.id() as libc::pid_t;

    let (tx, rx) = mpsc::channel::<(bool, String)>();
    let spawn_reader = |stream: Box<dyn Read + Send>, is_err: bool, tx: mpsc::Sender<_>| {
        thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf)
                            .trim_end_matches(['\n', '\r'])
                            .to_string();
                        if tx.send((is_err, line)).is_err() {
                            break;
                        }
                    }
                }
            }
        })
    };
    let out = child.stdout.take().expect("piped stdout");
    let err = child.stderr.take().expect("piped stderr");
    spawn_reader(Box::new(out), false, tx.clone());
    spawn_reader(Box::new(err), true, tx);

    let deadline = Instant::now() + timeout;
    let mut stdout: VecDeque<String> = VecDeque::new();
    let mut stderr: VecDeque<String> = VecDeque::new();
    let mut status: Option<ExitStatus> = None;
    let mut exited_at: Option<Instant> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((is_err, line)) => {
                if let Some(f) = on_line.as_mut() {
                    f(&line);
                }
                let buf = if is_err { &mut stderr } else { &mut stdout };
                if buf.len() == MAX_LINES {
                    buf.pop_front();
                }
                buf.push_back(line);
            }
            // Both pipes closed and the child reaped: all output is in.
            Err(mpsc::RecvTimeoutError::Disconnected) if status.is_some() => break,
            // Pipes closed, child still running: poll its exit below without spinning.
            Err(mpsc::RecvTimeoutError::Disconnected) => thread::sleep(Duration::from_millis(20)),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if status.is_none() {
            if let Some(s) = child.try_wait().context("waiting for child")? {
                status = Some(s);
                exited_at = Some(Instant::now());
            }
        }
        let now = Instant::now();
        // A grandchild may keep the pipes open after the child exited: stop reading soon.
        if exited_at.is_some_and(|t| now.duration_since(t) > Duration::from_secs(2)) {
            break;
        }
        if status.is_none() && now >= deadline {
            // SAFETY: plain syscall; the group id is the child's pid (process_group(0)).
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            let lines: Vec<&str> = stderr.iter().map(String::as_str).collect();
            let start = lines.len().saturating_sub(20);
            bail!(
                "{what} did not finish within {timeout:?} and was killed; last stderr lines:\n{}",
                lines[start..].join("\n")
            );
        }
    }
    let join = |lines: VecDeque<String>| {
        let mut s = Vec::from(lines).join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s
    };
    Ok(Captured {
        status: status.expect("loop ends only after the child exited"),
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

/// The last `n` lines of `s`.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn version_parsing() {
        assert_eq!(parse_version("3.13.5"), Some((3, 13, 5)));
        assert_eq!(parse_version("3.14.0rc1"), Some((3, 14, 0)));
        assert_eq!(parse_version("3.13.0t"), Some((3, 13, 0)));
        assert_eq!(parse_version("3.12"), Some((3, 12, 0)));
        assert_eq!(parse_version("3.10.13\n"), Some((3, 10, 13)));
        assert_eq!(parse_version("miniconda3-latest"), None);
        assert_eq!(parse_version("3"), None);
        assert_eq!(parse_version(""), None);

        assert!(!version_supported("3.11.7"));
        assert!(!version_supported("2.7.18"));
        assert!(version_supported("3.12.1"));
        assert!(version_supported("3.14.0rc1"));
        assert!(version_supported("3.13.5"));
        assert!(version_supported("4.0.0"));
        assert!(!version_supported("garbage"));
    }

    #[test]
    fn venv_key_tracks_requirements_interpreter_and_version() {
        let py = Path::new("/opt/python/bin/python3.13");
        let a = venv_key(b"celery==5.7.0\n", py, "3.13.5");
        assert_eq!(a.len(), 12);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, venv_key(b"celery==5.7.0\n", py, "3.13.5"));
        assert_ne!(a, venv_key(b"celery==5.6.0\n", py, "3.13.5"));
        assert_ne!(
            a,
            venv_key(
                b"celery==5.7.0\n",
                Path::new("/usr/bin/python3.13"),
                "3.13.5"
            )
        );
        assert_ne!(a, venv_key(b"celery==5.7.0\n", py, "3.13.6"));
    }

    #[test]
    fn pyenv_candidates_highest_first_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        for v in [
            "3.11.7",
            "3.12.1",
            "3.13.0",
            "3.12.10",
            "miniconda3-latest",
            "3.13.0t",
        ] {
            let bin = dir.path().join(v).join("bin");
            fs::create_dir_all(&bin).unwrap();
            fs::write(bin.join("python3"), "").unwrap();
        }
        let names: Vec<String> = pyenv_candidates(dir.path())
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["3.13.0t", "3.13.0", "3.12.10", "3.12.1"]);
    }

    /// A fake interpreter: a shell script answering the probe with `version`.
    fn fake_python(dir: &Path, version: &str, missing: &str) -> PathBuf {
        let path = dir.join(format!("python-{version}"));
        fs::write(
            &path,
            format!(
                "#!/bin/sh\necho '{{\"version\": \"{version}\", \"executable\": \"\", \
                 \"missing\": [{missing}]}}'\n"
            ),
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn isolated_search(dir: &Path) -> Search {
        Search {
            path_names: vec!["tasq-bench-no-such-python".into()],
            cached: dir.join("no-cache/bin/python3.13"),
            pyenv_versions: Some(dir.join("no-pyenv")),
            build_script: None,
            build_prefix: dir.join("no-cache"),
        }
    }

    #[test]
    fn bench_python_must_be_a_supported_python() {
        let dir = tempfile::tempdir().unwrap();
        let search = isolated_search(dir.path());
        let mut sink = |_: &str| {};

        let old = fake_python(dir.path(), "3.11.7", "");
        let err = find_interpreter(&search, Some(old.clone().into()), &mut sink).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("BENCH_PYTHON") && msg.contains("3.11.7"),
            "{msg}"
        );

        let no_ssl = fake_python(dir.path(), "3.13.1", "\"ssl (No module named '_ssl')\"");
        let msg = format!(
            "{:#}",
            find_interpreter(&search, Some(no_ssl.into()), &mut sink).unwrap_err()
        );
        assert!(msg.contains("ssl"), "{msg}");

        let missing = dir.path().join("nope/python3");
        let msg = format!(
            "{:#}",
            find_interpreter(&search, Some(missing.into()), &mut sink).unwrap_err()
        );
        assert!(
            msg.contains("BENCH_PYTHON") && msg.contains("nope"),
            "{msg}"
        );

        let good = fake_python(dir.path(), "3.14.0rc1", "");
        let found = find_interpreter(&search, Some(good.clone().into()), &mut sink).unwrap();
        assert_eq!(found.version, "3.14.0rc1");
        assert_eq!(found.source, "BENCH_PYTHON");
        assert_eq!(found.path, good);
    }

    #[test]
    fn nothing_found_names_what_was_tried_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let search = isolated_search(dir.path());
        let msg = format!(
            "{:#}",
            find_interpreter(&search, None, &mut |_: &str| {}).unwrap_err()
        );
        assert!(msg.contains("tasq-bench-no-such-python"), "{msg}");
        assert!(msg.contains("no-cache"), "{msg}");
        assert!(
            msg.contains("BENCH_PYTHON=") && msg.contains("CPYTHON_SRC="),
            "{msg}"
        );
    }

    #[test]
    fn bounded_run_kills_on_timeout() {
        let start = Instant::now();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo started >&2; sleep 30"]);
        let err = match run_bounded(&mut cmd, Duration::from_millis(500), None) {
            Ok(_) => panic!("sleep 30 finished within 500ms"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains("did not finish") && err.contains("started"),
            "{err}"
        );
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn bounded_run_streams_lines() {
        let mut lines = Vec::new();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo one; echo two >&2; echo three; exit 3"]);
        let out = run_bounded(
            &mut cmd,
            Duration::from_secs(10),
            Some(&mut |l: &str| lines.push(l.to_string())),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, "one\nthree\n");
        assert_eq!(out.stderr, "two\n");
        lines.sort();
        assert_eq!(lines, ["one", "three", "two"]);
    }

    /// Provisions for real. With a warm cache (interpreter built, venv ready) this takes a
    /// second or two; on a fresh machine it builds CPython and installs the lock (minutes).
    #[test]
    fn provision_real() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut lines = Vec::new();
        let env = PythonEnv::provision(root, &mut |l: &str| {
            eprintln!("{l}");
            lines.push(l.to_string());
        })
        .unwrap_or_else(|e| panic!("provision failed: {e:#}"));
        assert!(version_supported(&env.version), "{}", env.version);
        assert!(env.python.exists(), "{}", env.python.display());
        assert_eq!(env.python, env.bin("python"));
        assert!(env.venv.join(READY_MARKER).exists());
        assert!(env.bin("celery").exists());
        assert_eq!(
            env.packages.get("asynctasq").map(String::as_str),
            Some("1.7.0")
        );
        assert_eq!(
            env.packages.get("celery").map(String::as_str),
            Some("5.7.0")
        );
        for p in ["kombu", "redis", "httpx", "moto"] {
            assert!(
                env.packages.contains_key(p),
                "{p} missing: {:?}",
                env.packages
            );
        }
        assert!(!env.source.is_empty());
        assert!(lines.iter().any(|l| l.contains(&env.version)), "{lines:?}");
    }
}
