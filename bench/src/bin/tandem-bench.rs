//! The benchmarks that time whole processes, next to the criterion suite:
//!
//! - `floor`: only the file work of a run (the same creates, reads and links, in the
//!   same layout, with dummy bytes of the real sizes), the reference a loadtest is
//!   measured against;
//! - `compare`: `tandem loadtest` and `floor` alternated, medians and their ratio;
//! - `api`: requests per second of `tandem api serve` (writes, reads, list) over
//!   keep-alive connections.
//!
//! `scripts/bench.sh` runs them all with the criterion suite.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::{Parser, Subcommand};
use tandem_bench::{completion, processed, procured};
use tandem_core::exchange;
use tandem_core::names::Stage;

#[derive(Parser)]
#[command(about = "Process-level benchmarks of tandem: the file-layout floor, loadtest against it, the API")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Do only the file work of a loadtest (no Parquet, no checks) and print the seconds;
    /// the files stay in DIR, as with `loadtest --keep`
    Floor(Shape),
    /// Alternate `tandem loadtest --keep` and `floor` runs; print medians and the ratio
    Compare {
        #[command(flatten)]
        shape: Shape,
        /// The tandem binary (a release build)
        #[arg(long)]
        tandem: PathBuf,
        /// Runs of each, alternated
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: u32,
        /// A name for the file system in the output (e.g. disk, /dev/shm)
        #[arg(long)]
        label: String,
    },
    /// Requests per second of `tandem api serve` on the embedded store
    Api {
        /// The tandem binary (a release build)
        #[arg(long)]
        tandem: PathBuf,
        /// Where the server keeps its tables (a fresh directory is made in it)
        #[arg(long)]
        dir: PathBuf,
        /// Concurrent keep-alive connections
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
        connections: u32,
        /// Seconds per phase (writes, reads, list)
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
    },
}

#[derive(clap::Args, Clone)]
struct Shape {
    /// Directory the run works in (removed before each run)
    #[arg(long)]
    dir: PathBuf,
    /// IDs in the run (N)
    #[arg(long, default_value_t = 400_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    records: u64,
    /// IDs per child (K)
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    ids_per_node: u64,
    /// Threads (the loadtest's --workers)
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=1024))]
    threads: u64,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Floor(shape) => {
            let t = floor(&shape)?;
            println!("{}", serde_json::json!({ "floor_s": t.as_secs_f64() }));
        }
        Cmd::Compare {
            shape,
            tandem,
            runs,
            label,
        } => compare(&shape, &tandem, runs, &label)?,
        Cmd::Api {
            tandem,
            dir,
            connections,
            seconds,
        } => api(&tandem, &dir, connections as usize, Duration::from_secs(seconds))?,
    }
    Ok(())
}

/// Shards per stage directory, as in `tandem_core::layout`.
const SHARDS: u32 = 64;

/// The file work of one loadtest, in tandem's layout: prepare's two files, per child
/// a procure file written, read back and a process file written, read back and
/// published as an unnamed file linked into the bucket, then verify's listing and
/// read of every result. The bytes are child 0's real encodings, so the sizes match.
fn floor(shape: &Shape) -> Result<Duration> {
    let children = shape.records.div_ceil(shape.ids_per_node);
    let k = shape.ids_per_node.min(shape.records);
    let (b1, d1) = procured(k);
    let (b2, d2) = processed(k);
    let f1 = exchange::encode(&b1, &mut completion(Stage::Procure, d1))?;
    let f2 = bytes::Bytes::from(exchange::encode(&b2, &mut completion(Stage::Process, d2))?);
    let footer = exchange::read_footer("floor", &f2)?;
    let f3 = exchange::restamp("floor", &f2, &footer, &completion(Stage::Egress, d2))?;

    let run = shape.dir.join("vol").join("floor-run");
    let results = shape.dir.join("bucket").join("floor-run").join("results");
    // A run left in DIR by an earlier floor is removed first, outside the timing.
    clean(&run)?;
    clean(&shape.dir.join("bucket").join("floor-run"))?;
    let start = Instant::now();
    std::fs::create_dir_all(&run)?;
    std::fs::write(run.join("ids.arrow"), vec![0u8; shape.records as usize * 8 + 512])?;
    std::fs::write(run.join("manifest.json"), vec![b' '; 600])?;
    for stage in ["procure", "process"] {
        for s in 0..SHARDS.min(children as u32) {
            std::fs::create_dir_all(run.join(stage).join(format!("{s:02}")))?;
        }
    }
    std::fs::create_dir_all(&results)?;
    let file = |stage: &str, i: u64| {
        run.join(stage)
            .join(format!("{:02}", i % u64::from(SHARDS)))
            .join(format!("{i:05}.parquet"))
    };
    let next = AtomicU64::new(0);
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..shape.threads)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let mut buf = Vec::with_capacity(f1.len().max(f2.len()));
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= children {
                            return Ok(());
                        }
                        let (p1, p2) = (file("procure", i), file("process", i));
                        File::create(&p1)?.write_all(&f1)?;
                        read_known(&p1, f1.len(), &mut buf)?;
                        File::create(&p2)?.write_all(&f2)?;
                        read_known(&p2, f2.len(), &mut buf)?;
                        link_unnamed(&results, &results.join(format!("{i:05}.parquet")), &f3)?;
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("a floor thread panicked")?;
        }
        Ok(())
    })?;
    // verify: list the results and read each.
    let names: Vec<PathBuf> = std::fs::read_dir(&results)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    ensure!(
        names.len() as u64 == children,
        "{} results, expected {children}",
        names.len()
    );
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..shape.threads)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let mut buf = Vec::with_capacity(f3.len());
                    while let Some(p) = names.get(next.fetch_add(1, Ordering::Relaxed)) {
                        read_known(p, f3.len(), &mut buf)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join().expect("a floor thread panicked")?;
        }
        Ok(())
    })?;
    Ok(start.elapsed())
}

/// open, one read of the known size, close.
fn read_known(path: &Path, len: usize, buf: &mut Vec<u8>) -> Result<()> {
    buf.resize(len, 0);
    File::open(path)?.read_exact(buf)?;
    Ok(())
}

/// Writes `data` to an unnamed file in `dir` and links it at `path`, as the local bucket does.
fn link_unnamed(dir: &Path, path: &Path, data: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o644)
        .open(dir)?;
    f.write_all(data)?;
    let from = CString::new(format!("/proc/self/fd/{}", f.as_raw_fd()))?;
    let to = CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("link {}", path.display()));
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn clean(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Wall time of one process, start to exit; fails unless it exits 0.
fn timed(cmd: &mut Command) -> Result<f64> {
    let start = Instant::now();
    let out = dies_with_us(cmd.stdout(Stdio::null()).stderr(Stdio::piped())).output()?;
    let t = start.elapsed().as_secs_f64();
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(t)
}

fn compare(shape: &Shape, tandem: &Path, runs: u32, label: &str) -> Result<()> {
    let me = std::env::current_exe()?;
    let (mut ours, mut floors) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        clean(&shape.dir)?;
        ours.push(timed(
            Command::new(tandem)
                .arg("loadtest")
                .arg("--root")
                .arg(shape.dir.join("vol"))
                .arg("--bucket")
                .arg(format!("file://{}", shape.dir.join("bucket").display()))
                .args(["--keep", "--json", "--records", &shape.records.to_string()])
                .args(["--ids-per-node", &shape.ids_per_node.to_string()])
                .args(["--workers", &shape.threads.to_string()]),
        )?);
        clean(&shape.dir)?;
        floors.push(timed(
            Command::new(&me)
                .args(["floor", "--dir"])
                .arg(&shape.dir)
                .args(["--records", &shape.records.to_string()])
                .args(["--ids-per-node", &shape.ids_per_node.to_string()])
                .args(["--threads", &shape.threads.to_string()]),
        )?);
    }
    clean(&shape.dir)?;
    let (t, f) = (median(&mut ours), median(&mut floors));
    println!(
        "{}",
        serde_json::json!({
            "label": label, "records": shape.records, "ids_per_node": shape.ids_per_node,
            "runs": runs, "loadtest_s": t, "floor_s": f, "ratio": t / f,
            "loadtest_runs_s": ours, "floor_runs_s": floors,
        })
    );
    Ok(())
}

/// A `tandem api serve` on a free loopback port over its own data directory; when
/// dropped (any error, or a stop signal) the server is stopped and the directory
/// removed.
struct Server {
    child: std::process::Child,
    data: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// Makes the child receive SIGTERM when this process dies, even by SIGKILL, so no
/// benchmark leaves a loadtest or a server running.
fn dies_with_us(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Resolves on SIGINT or SIGTERM, naming it.
async fn stop_signal() -> Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut int, mut term) = (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?);
    Ok(tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    })
}

fn api(tandem: &Path, dir: &Path, connections: usize, phase: Duration) -> Result<()> {
    use std::io::BufRead;
    let data = dir.join(format!("api-bench-{}", std::process::id()));
    clean(&data)?;
    let mut child = dies_with_us(
        Command::new(tandem)
            .args(["api", "serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
    .spawn()
    .with_context(|| format!("start {}", tandem.display()))?;
    let stderr = child.stderr.take();
    let server = Server { child, data };
    let mut line = String::new();
    let mut stderr = std::io::BufReader::new(stderr.context("stderr")?);
    stderr.read_line(&mut line)?;
    // Keep reading what the server says, so its stderr never closes under it.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let Some(addr) = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
    else {
        bail!("no address in the server's first line {line:?}");
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let addr = addr.to_string();
    let phases = async {
        let mut writes = load(&addr, connections, phase, |c, i| {
            let body = format!(r#"{{"product_category":"Bench","product_title":"c{c}-{i}"}}"#);
            Request::post("/addProduct", body)
        })
        .await?;
        ensure!(!writes.ids.is_empty(), "no write was acknowledged");
        let ids = std::sync::Arc::new(std::mem::take(&mut writes.ids));
        let reads = {
            let ids = ids.clone();
            load(&addr, connections, phase, move |c, i| {
                let id = &ids[(c * 7919 + i * 104_729) % ids.len()];
                Request::get(format!("/getProduct?product_id={id}"))
            })
            .await?
        };
        let list = load(&addr, connections, phase, |_, _| {
            Request::get("/getProducts?limit=25".into())
        })
        .await?;
        Ok::<_, anyhow::Error>((writes, reads, list))
    };
    let (writes, reads, list) = rt.block_on(async {
        tokio::select! {
            r = phases => r,
            s = stop_signal() => bail!("stopped by {}: the server is stopped and its data removed", s?),
        }
    })?;
    drop(server);
    let out = |p: &Phase| {
        serde_json::json!({
            "requests_per_s": p.ok as f64 / p.elapsed.as_secs_f64(),
            "ok": p.ok, "errors": p.errors, "p50_ms": p.quantile_ms(0.5), "p99_ms": p.quantile_ms(0.99),
        })
    };
    println!(
        "{}",
        serde_json::json!({
            "connections": connections, "seconds_per_phase": phase.as_secs(),
            "writes": out(&writes), "reads": out(&reads), "list": out(&list),
        })
    );
    Ok(())
}

struct Request {
    method: &'static str,
    path: String,
    body: String,
}

impl Request {
    fn get(path: String) -> Request {
        Request {
            method: "GET",
            path,
            body: String::new(),
        }
    }

    fn post(path: &str, body: String) -> Request {
        Request {
            method: "POST",
            path: path.into(),
            body,
        }
    }
}

#[derive(Default)]
struct Phase {
    ok: u64,
    errors: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
    /// `product_id`s of acknowledged writes.
    ids: Vec<String>,
}

impl Phase {
    fn quantile_ms(&self, q: f64) -> f64 {
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1)))
            .map_or(0.0, |us| f64::from(*us) / 1000.0)
    }
}

/// `connections` keep-alive connections each sending `make(connection, i)` back to
/// back for `phase`.
async fn load(
    addr: &str,
    connections: usize,
    phase: Duration,
    make: impl Fn(usize, usize) -> Request + Send + Sync + Clone + 'static,
) -> Result<Phase> {
    let deadline = tokio::time::Instant::now() + phase;
    let start = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let (addr, make) = (addr.to_string(), make.clone());
            tokio::spawn(async move { connection(&addr, c, deadline, make).await })
        })
        .collect();
    let mut all = Phase::default();
    for t in tasks {
        let p = t.await??;
        all.ok += p.ok;
        all.errors += p.errors;
        all.latencies_us.extend(p.latencies_us);
        all.ids.extend(p.ids);
    }
    all.elapsed = start.elapsed();
    Ok(all)
}

async fn connection(
    addr: &str,
    c: usize,
    deadline: tokio::time::Instant,
    make: impl Fn(usize, usize) -> Request,
) -> Result<Phase> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.set_nodelay(true)?;
    let mut phase = Phase::default();
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut i = 0;
    while tokio::time::Instant::now() < deadline {
        let r = make(c, i);
        i += 1;
        let req = format!(
            "{} {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            r.method,
            r.path,
            r.body.len(),
            r.body
        );
        let sent = Instant::now();
        conn.write_all(req.as_bytes()).await?;
        // Read the head, then exactly Content-Length bytes of body.
        buf.clear();
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut chunk = [0u8; 8192];
            let n = conn.read(&mut chunk).await?;
            ensure!(n > 0, "the server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&buf[..head_end])?;
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .context("no status")?;
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse())
            })
            .context("no content-length")??;
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 8192];
            let n = conn.read(&mut chunk).await?;
            ensure!(n > 0, "the server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
        phase
            .latencies_us
            .push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        if (200..300).contains(&status) {
            phase.ok += 1;
            if r.method == "POST" {
                let v: serde_json::Value = serde_json::from_slice(&buf[head_end..head_end + len])?;
                phase
                    .ids
                    .push(v["product_id"].as_str().context("no product_id")?.to_string());
            }
        } else {
            phase.errors += 1;
        }
    }
    Ok(phase)
}
