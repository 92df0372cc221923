//! The scan recorder: a bounded queue fed by the redirect handler, one batcher
//! task that enriches scans and cuts batches (by size or age), and one worker
//! per sink that writes each batch, or spools it to disk when the sink is down
//! and replays the spool, in order, when it comes back.
//!
//! The batcher and the workers run on a thread of their own (a current-thread
//! tokio runtime named `codelink-recorder`), never on the threads that serve
//! requests: enriching a batch or building a sink's payload takes
//! milliseconds of CPU, and on a request thread that would be milliseconds
//! added to the redirects queued behind it.
//!
//! ```text
//! redirect ─try_send→ [queue] → batcher (enrich, cut) ─Arc<Batch>→ worker(embedded|redis|clickhouse) → sink
//!                                                                     └── on failure or past backlog_max → spool/<sink>/ → replay
//! ```
//!
//! Loss model: a scan that got its 302 is in the queue. It is lost only when
//! (a) the process crashes before its batch was cut and handed to the sinks
//! (at most `flush_interval` of scans, plus what the queue held), or (b) the
//! queue is full or the spool is full/unwritable; both are counted in metrics
//! and logged, never silent. A sink slower than the scans come loses nothing
//! until its spool is full: past `backlog_max` scans waiting in memory for
//! it, its batches go to its spool (so memory stays bounded) and are
//! replayed in order.

use crate::batch::{human_scans, Batch, HumanScans};
use crate::enrich::Enricher;
use crate::event::{Conversion, RawScan, Scan};
use crate::review::Adjustment;
use crate::sink::{Halt, Sink, SinkKind};
use crate::spool::{Spool, SpoolError};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub data_dir: PathBuf,
    /// A batch is cut at least this often (and this bounds the crash loss).
    pub flush_interval: Duration,
    /// A batch is cut when it reaches this many scans.
    pub batch_max: usize,
    /// Scans waiting for the batcher; beyond it scans are counted as lost.
    pub queue_capacity: usize,
    /// The nice value of the store threads (see [`RecorderThread`]).
    pub nice: i32,
    /// Scans one sink worker holds in memory while its sink is slower than
    /// the scans come (besides the batch being written); past it, batches go
    /// to the sink's spool and are replayed from there, in order.
    pub backlog_max: usize,
    /// Disk the spool of one sink may use.
    pub spool_max_bytes: u64,
    /// How often a sink that failed is tried again.
    pub retry_interval: Duration,
    /// Longest wait for one sink write before it counts as failed.
    pub write_timeout: Duration,
    /// How the enricher judges scans beyond their user agent.
    pub verdicts: crate::config::VerdictRules,
    /// Told the human scans per code of every batch the live store's sink
    /// (`live_sink`) has written (webhook milestones read its counters
    /// back); full: skipped.
    pub after_live_write: Option<(SinkKind, mpsc::Sender<HumanScans>)>,
}

/// Counters for `/metrics`, shared by the recorder's tasks.
#[derive(Default)]
pub struct RecorderMetrics {
    pub queued: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub batches: AtomicU64,
    sinks: [SinkMetrics; 3],
}

#[derive(Default)]
pub struct SinkMetrics {
    pub written: AtomicU64,
    pub spooled: AtomicU64,
    pub replayed: AtomicU64,
    pub lost: AtomicU64,
    pub failures: AtomicU64,
    pub spool_bytes: AtomicU64,
}

impl RecorderMetrics {
    pub fn sink(&self, kind: SinkKind) -> &SinkMetrics {
        &self.sinks[kind as usize]
    }

    /// Appends the Prometheus text of these counters.
    pub fn render(&self, out: &mut String, active: &[SinkKind]) {
        let _ = writeln!(out, "# HELP codelink_scans_queued_total Scans handed to the recorder.\n# TYPE codelink_scans_queued_total counter\ncodelink_scans_queued_total {}", self.queued.load(Relaxed));
        let _ = writeln!(out, "# HELP codelink_scans_dropped_total Scans lost because the recorder queue was full.\n# TYPE codelink_scans_dropped_total counter\ncodelink_scans_dropped_total {}", self.dropped_queue_full.load(Relaxed));
        let _ = writeln!(out, "# HELP codelink_scan_batches_total Batches cut by the recorder.\n# TYPE codelink_scan_batches_total counter\ncodelink_scan_batches_total {}", self.batches.load(Relaxed));
        type Series = (&'static str, &'static str, fn(&SinkMetrics) -> &AtomicU64);
        let series: [Series; 6] = [
            (
                "codelink_scans_written_total",
                "Scans written to a sink (directly or by replay).",
                |m| &m.written,
            ),
            (
                "codelink_scans_spooled_total",
                "Scans written to a sink's disk spool because the sink failed.",
                |m| &m.spooled,
            ),
            (
                "codelink_scans_replayed_total",
                "Scans replayed from the spool into their sink.",
                |m| &m.replayed,
            ),
            (
                "codelink_scans_lost_total",
                "Scans lost: the spool was full or could not be written.",
                |m| &m.lost,
            ),
            ("codelink_sink_failures_total", "Failed sink writes.", |m| {
                &m.failures
            }),
            (
                "codelink_spool_bytes",
                "Bytes waiting in a sink's spool.",
                |m| &m.spool_bytes,
            ),
        ];
        for (name, help, get) in series {
            let kind = if name.ends_with("_bytes") {
                "gauge"
            } else {
                "counter"
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for sink in active {
                let _ = writeln!(
                    out,
                    "{name}{{sink=\"{}\"}} {}",
                    sink.name(),
                    get(self.sink(*sink)).load(Relaxed)
                );
            }
        }
    }
}

/// Gives the calling thread the nice value `nice` (0: leaves it as it is).
/// Failing is only logged: the store works the same, at the usual priority.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // On Linux, PRIO_PROCESS without a pid names the calling thread, not
        // the whole process: the requests' threads keep their priority.
        if let Err(e) = rustix::process::setpriority_process(None, nice) {
            tracing::warn!(
                nice,
                error = %e,
                "cannot lower the store threads' priority; they run at the usual one"
            );
        }
    }
}

/// Longest wait for the sinks to take a batch someone waits on.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the batcher takes what the queue holds.
const DRAIN_EVERY: Duration = Duration::from_millis(5);

/// Conversions and review decisions are waited on by an API caller (a
/// brand's backend, Stripe, Shopify): the batch holding them is cut at the
/// next drain rather than at the age tick, but at most once per this gap, so
/// a stream of conversions makes at most 5 batches (ClickHouse inserts) a
/// second, not one per report.
const EARLY_CUT_GAP: Duration = Duration::from_millis(200);
/// Scans enriched before the batcher looks at control messages and its tick again.
const DRAIN_RUN: usize = 512;
/// Batches waiting for one sink worker to take them (it takes them while it
/// writes, so this only smooths a burst; the memory a slow sink may hold is
/// `backlog_max`).
const WORKER_CHANNEL: usize = 4;

enum Control {
    /// Conversions to store; answer once they are written or spooled.
    Conversions(Vec<Conversion>, oneshot::Sender<bool>),
    /// Review adjustments to store; answered like conversions.
    Adjustments(Vec<Adjustment>, oneshot::Sender<bool>),
    /// Drain the queue, cut a last batch, and end the tasks.
    Stop,
}

/// The handle the gateway holds. Cloning is cheap.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<RawScan>,
    control: mpsc::Sender<Control>,
    metrics: Arc<RecorderMetrics>,
    sinks: Arc<Vec<SinkKind>>,
}

/// What [`Recorder::start`] returns besides the handle: await it after the last
/// scan was recorded to flush everything and stop the tasks. Dropped instead,
/// it ends the recorder's thread at once, and what it still held is lost.
#[must_use = "call finish() after the last scan, or what the recorder holds is lost"]
pub struct RecorderTasks {
    batcher: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    thread: RecorderThread,
    /// Set at shutdown: by then every worker must have written or spooled
    /// what it holds.
    stop_by: watch::Sender<Option<Instant>>,
}

/// The recorder's own thread and runtime. Dropping it (or `stop`) ends the
/// runtime, which cancels whatever task is still on it.
///
/// Its runtime's blocking threads (named `codelink-store`: the embedded
/// store writes a second of scans there at once) run at a lower priority,
/// `nice`: the requests' threads come first when both want the CPU, and a
/// batch's write no longer delays the answers given meanwhile (see
/// `load-tests/results/hot-path-issue15.md`). The store catches up as soon as
/// the requests leave it room; behind that, the worker's backlog and spool
/// hold what it has not written. The recorder's own thread keeps the usual
/// priority: it empties the scan queue, and at nice 10 under full load it
/// fell behind the queue, which dropped millions of scans in a minute.
struct RecorderThread {
    handle: tokio::runtime::Handle,
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl RecorderThread {
    fn start(nice: i32) -> std::io::Result<Self> {
        let (handle_tx, handle_rx) = std::sync::mpsc::sync_channel(1);
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("codelink-recorder".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name("codelink-store")
                    .on_thread_start(move || lower_priority(nice))
                    .build()
                {
                    Ok(rt) => {
                        let _ = handle_tx.send(Ok(rt.handle().clone()));
                        // Tasks spawned on the handle run while this blocks.
                        rt.block_on(async {
                            let _ = stop_rx.await;
                        });
                    }
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                    }
                }
            })?;
        let handle = handle_rx
            .recv()
            .map_err(|_| std::io::Error::other("the recorder thread ended during start-up"))??;
        Ok(Self {
            handle,
            stop,
            thread,
        })
    }

    /// Ends the runtime and waits for the thread.
    async fn stop(self) {
        let _ = self.stop.send(());
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

impl Recorder {
    pub fn start(
        config: RecorderConfig,
        sinks: Vec<Sink>,
    ) -> Result<(Self, RecorderTasks), SpoolError> {
        let thread = RecorderThread::start(config.nice)?;
        let metrics = Arc::new(RecorderMetrics::default());
        let (queue, queue_rx) = mpsc::channel(config.queue_capacity.max(1));
        let (control, control_rx) = mpsc::channel(1024);
        let mut worker_txs = Vec::new();
        let mut workers = Vec::new();
        let (recycle, recycled) = mpsc::channel(1);
        let (stop_by, stop_rx) = watch::channel(None);
        let kinds: Vec<SinkKind> = sinks.iter().map(Sink::kind).collect();
        for sink in sinks {
            let kind = sink.kind();
            let spool = Spool::open(
                config.data_dir.join("spool").join(kind.name()),
                config.spool_max_bytes,
            )?;
            metrics.sink(kind).spool_bytes.store(spool.bytes(), Relaxed);
            let (tx, rx) = mpsc::channel::<Acked>(WORKER_CHANNEL);
            worker_txs.push(tx);
            let after_write = config
                .after_live_write
                .as_ref()
                .filter(|(live, _)| *live == kind)
                .map(|(_, tx)| tx.clone());
            let worker = Worker {
                after_write,
                sink,
                metrics: metrics.clone(),
                retry: config.retry_interval,
                timeout: config.write_timeout,
                backlog_max: config.backlog_max,
                stop_by: stop_rx.clone(),
                halt: Halt::default(),
                recycle: recycle.clone(),
            };
            workers.push(thread.handle.spawn(worker.run(spool, rx)));
        }
        let batcher = thread.handle.spawn(batcher(
            config,
            queue_rx,
            control_rx,
            worker_txs,
            recycled,
            metrics.clone(),
        ));
        Ok((
            Self {
                queue,
                control,
                metrics,
                sinks: Arc::new(kinds),
            },
            RecorderTasks {
                batcher,
                workers,
                thread,
                stop_by,
            },
        ))
    }

    /// Hands a scan to the recorder without waiting. Never blocks the caller.
    pub fn record(&self, scan: RawScan) {
        match self.queue.try_send(scan) {
            Ok(()) => {
                self.metrics.queued.fetch_add(1, Relaxed);
            }
            Err(_) => {
                let n = self.metrics.dropped_queue_full.fetch_add(1, Relaxed);
                if n.is_power_of_two() {
                    tracing::error!(dropped = n + 1, "scan queue full: scans are being lost");
                }
            }
        }
    }

    /// Stores conversions through the same sinks as scans; returns true once
    /// every sink has written them or spooled them to disk (so a 202 is
    /// durable), false when one could not (the caller answers 503 and the brand
    /// retries with the same event id).
    pub async fn record_conversions(&self, conversions: Vec<Conversion>) -> bool {
        let (tx, rx) = oneshot::channel();
        if self
            .control
            .send(Control::Conversions(conversions, tx))
            .await
            .is_err()
        {
            return false;
        }
        matches!(tokio::time::timeout(ACK_TIMEOUT, rx).await, Ok(Ok(true)))
    }

    /// Carries review adjustments through the sinks like conversions (see
    /// [`Recorder::record_conversions`]).
    pub async fn record_adjustments(&self, adjustments: Vec<Adjustment>) -> bool {
        let (tx, rx) = oneshot::channel();
        if self
            .control
            .send(Control::Adjustments(adjustments, tx))
            .await
            .is_err()
        {
            return false;
        }
        matches!(tokio::time::timeout(ACK_TIMEOUT, rx).await, Ok(Ok(true)))
    }

    pub fn metrics(&self) -> &RecorderMetrics {
        &self.metrics
    }

    pub fn sinks(&self) -> &[SinkKind] {
        &self.sinks
    }
}

impl RecorderTasks {
    /// Call after the last [`Recorder::record`] (the HTTP server has drained):
    /// the batcher drains the queue and cuts a last batch, and each worker
    /// writes (or spools) what it holds before this returns. Within
    /// `deadline`: a sink write still pending then is given up (halted, not
    /// only no longer waited for) and its batch spooled, and the spool replay
    /// of a sink that came back stops (its files are replayed at the next
    /// start). A worker that is behind (spilling to its spool) gives up the
    /// embedded store's write at once (when its spool has room for the batch)
    /// and spools what memory holds; other sinks' writes are awaited up to
    /// the deadline. Should the disk itself hang, the
    /// recorder is abandoned a few seconds after the deadline, with an error log.
    pub async fn finish(self, recorder: &Recorder, deadline: Duration) {
        let stop_by = Instant::now() + deadline;
        let _ = self.stop_by.send(Some(stop_by));
        let flush = async {
            let _ = recorder.control.send(Control::Stop).await;
            let _ = self.batcher.await;
            for w in self.workers {
                let _ = w.await;
            }
        };
        if tokio::time::timeout_at(stop_by + ABANDON_AFTER, flush)
            .await
            .is_err()
        {
            tracing::error!(
                ?deadline,
                "the scan recorder did not finish in time (is the disk hanging?); \
                 scans it still held are lost"
            );
        }
        self.thread.stop().await;
    }
}

/// More than a scan takes in a spool file (about 50 bytes compressed, 460 as
/// JSON): a batch is given up at shutdown only when its spool surely has room.
const SPOOLED_SCAN_BYTES_MAX: u64 = 1024;

/// How long past its deadline a recorder that cannot even spool is waited for.
const ABANDON_AFTER: Duration = Duration::from_secs(5);

type WorkerTx = mpsc::Sender<Acked>;

/// Emptied scan vectors of written batches, on their way back to the
/// batcher. At full speed a batch holds tens of megabytes of scans, and a
/// new vector for each meant the kernel faulting in and zeroing all of it
/// again every second (most of the recorder thread's time under load).
/// One waits at most; the batcher drops it when idle or when it is far
/// larger than the next batch needs.
type Recycled = mpsc::Sender<Vec<Scan>>;

/// What the batcher holds until the next cut.
struct Pending {
    scans: Vec<Scan>,
    conversions: Vec<Conversion>,
    adjustments: Vec<Adjustment>,
    steps: Vec<crate::event::StepEvent>,
    /// Told once the batch holding these items is written or spooled by every sink.
    waiting: Vec<oneshot::Sender<bool>>,
    /// When the last batch was cut.
    last_cut: std::time::Instant,
}

impl Pending {
    fn len(&self) -> usize {
        self.scans.len() + self.conversions.len() + self.adjustments.len() + self.steps.len()
    }
}

async fn batcher(
    config: RecorderConfig,
    mut queue: mpsc::Receiver<RawScan>,
    mut control: mpsc::Receiver<Control>,
    workers: Vec<WorkerTx>,
    mut recycled: mpsc::Receiver<Vec<Scan>>,
    metrics: Arc<RecorderMetrics>,
) {
    let mut enricher = Enricher::new(config.verdicts.clone());
    let mut pending = Pending {
        scans: Vec::with_capacity(config.batch_max.min(4096)),
        conversions: Vec::new(),
        adjustments: Vec::new(),
        steps: Vec::new(),
        waiting: Vec::new(),
        last_cut: std::time::Instant::now(),
    };
    let early_gap = EARLY_CUT_GAP.min(config.flush_interval);
    let mut tick = tokio::time::interval(config.flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The batcher looks at the queue on a short timer instead of waiting on it:
    // waiting would mean one task wake-up per scan on the redirect's threads,
    // while a drain every few milliseconds takes the scans in runs.
    let mut drain = tokio::time::interval(DRAIN_EVERY.min(config.flush_interval));
    drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Control and the age tick first: they are rare, and under a
            // steady stream of scans they must still be heard.
            biased;
            Some(ctl) = control.recv() => match ctl {
                Control::Conversions(conversions, done) => {
                    // Cut early (see `EARLY_CUT_GAP`): someone waits on these.
                    pending.conversions.extend(conversions);
                    pending.waiting.push(done);
                }
                Control::Adjustments(adjustments, done) => {
                    pending.adjustments.extend(adjustments);
                    pending.waiting.push(done);
                }
                Control::Stop => {
                    // The HTTP server has drained: take everything left.
                    while drain_run(&mut queue, &mut enricher, &mut pending, &config, &workers, &mut recycled, &metrics).await == Drained::More {}
                    break;
                }
            },
            _ = tick.tick() => {
                if pending.len() > 0 || !pending.waiting.is_empty() {
                    cut(&mut pending, &workers, &mut recycled, &metrics).await;
                } else {
                    // Idle: a vector kept for the next batch is memory for nothing.
                    while recycled.try_recv().is_ok() {}
                }
            }
            _ = drain.tick() => {
                match drain_run(&mut queue, &mut enricher, &mut pending, &config, &workers, &mut recycled, &metrics).await {
                    Drained::Empty => {}
                    // More is waiting: come back at once, after control and
                    // the age tick have had their turn.
                    Drained::More => drain.reset_immediately(),
                    Drained::Closed => break, // every sender dropped: shutdown
                }
                if !pending.waiting.is_empty() && pending.last_cut.elapsed() >= early_gap {
                    cut(&mut pending, &workers, &mut recycled, &metrics).await;
                }
            }
        }
    }
    cut(&mut pending, &workers, &mut recycled, &metrics).await;
}

#[derive(Debug, PartialEq, Eq)]
enum Drained {
    /// The queue is empty.
    Empty,
    /// A full run was taken; more may be waiting.
    More,
    /// Every sender is gone.
    Closed,
}

/// Moves up to [`DRAIN_RUN`] scans from the queue into `pending`, cutting a
/// batch whenever one is full. One run at a time, so that under a steady
/// stream the batcher still hears control messages and its age tick.
async fn drain_run(
    queue: &mut mpsc::Receiver<RawScan>,
    enricher: &mut Enricher,
    pending: &mut Pending,
    config: &RecorderConfig,
    workers: &[WorkerTx],
    recycled: &mut mpsc::Receiver<Vec<Scan>>,
    metrics: &RecorderMetrics,
) -> Drained {
    for _ in 0..DRAIN_RUN {
        match queue.try_recv() {
            Ok(raw) if !raw.step.is_scan() => {
                // A follow-up of a scan: counted, not stored as one.
                pending.steps.push(crate::event::StepEvent {
                    ts_ms: raw.scan_id.unix_ms(),
                    code: raw.code,
                    step: raw.step,
                });
                if pending.len() >= config.batch_max {
                    cut(pending, workers, recycled, metrics).await;
                }
            }
            Ok(raw) => {
                pending.scans.push(enricher.enrich(raw));
                if pending.len() >= config.batch_max {
                    cut(pending, workers, recycled, metrics).await;
                }
            }
            Err(mpsc::error::TryRecvError::Empty) => return Drained::Empty,
            Err(mpsc::error::TryRecvError::Disconnected) => return Drained::Closed,
        }
    }
    Drained::More
}

/// Hands the pending items to every worker as one batch; whoever waits on them
/// is told once all workers have written or spooled it.
async fn cut(
    pending: &mut Pending,
    workers: &[WorkerTx],
    recycled: &mut mpsc::Receiver<Vec<Scan>>,
    metrics: &RecorderMetrics,
) {
    pending.last_cut = std::time::Instant::now();
    let waiting = std::mem::take(&mut pending.waiting);
    // The next batch is likely about this size: reserving it up front spares
    // the copies of a vector that doubles its way up to tens of thousands.
    let next = pending.scans.len() + pending.scans.len() / 4;
    let fresh = next_scans(recycled, next);
    let mut batch = Batch::new(
        std::mem::replace(&mut pending.scans, fresh),
        std::mem::take(&mut pending.conversions),
    );
    batch.adjustments = std::mem::take(&mut pending.adjustments);
    batch.steps = std::mem::take(&mut pending.steps);
    if batch.is_empty() {
        for done in waiting {
            let _ = done.send(true);
        }
        return;
    }
    let batch = Arc::new(batch);
    metrics.batches.fetch_add(1, Relaxed);
    let mut acks = Vec::new();
    let mut all_sent = true;
    for w in workers {
        let (ack_tx, ack_rx) = oneshot::channel();
        if w.send((batch.clone(), Some(ack_tx))).await.is_ok() {
            acks.push(ack_rx);
        } else {
            // A worker that ended cannot take batches: never report success.
            all_sent = false;
            tracing::error!("a sink worker has stopped; its batches are not stored");
        }
    }
    if !waiting.is_empty() {
        // Waiting for the sinks happens beside the batcher, which goes on cutting.
        tokio::spawn(async move {
            let mut ok = all_sent;
            for ack in acks {
                ok &= matches!(ack.await, Ok(true));
            }
            for done in waiting {
                let _ = done.send(ok);
            }
        });
    }
}

/// An empty vector for the next batch, with room for `next` scans: an
/// earlier batch's (see [`Recycled`]) unless it is far larger than this one
/// needs (the load fell: it is dropped, and its memory goes back).
fn next_scans(recycled: &mut mpsc::Receiver<Vec<Scan>>, next: usize) -> Vec<Scan> {
    match recycled.try_recv() {
        // Too small, it is not grown: `reserve` would copy all of it.
        Ok(mut scans) if (next..=4 * next.max(4096)).contains(&scans.capacity()) => {
            scans.clear();
            scans
        }
        _ => Vec::with_capacity(next),
    }
}

struct Worker {
    after_write: Option<mpsc::Sender<HumanScans>>,
    sink: Sink,
    metrics: Arc<RecorderMetrics>,
    retry: Duration,
    timeout: Duration,
    /// Scans held in memory waiting for the sink (beyond the batch being
    /// written); past it, batches go to the spool.
    backlog_max: usize,
    /// The shutdown deadline, once shutdown has begun.
    stop_by: watch::Receiver<Option<Instant>>,
    /// Set at shutdown to give up the write under way (see [`Halt`]).
    halt: Halt,
    recycle: Recycled,
}

type Acked = (Arc<Batch>, Option<oneshot::Sender<bool>>);

/// Why batches are going to the spool instead of memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spilling {
    /// They are not: batches wait in memory.
    No,
    /// The sink writes, but slower than batches come: the backlog in memory
    /// reached `backlog_max`.
    Behind,
    /// A write failed (or an earlier run left a spool).
    Down,
}

/// What a worker holds besides its sink: the batches waiting in memory, in
/// order, and the spool holding the ones after them.
struct Backlog {
    memory: std::collections::VecDeque<Acked>,
    scans: usize,
    spool: Spool,
    spilling: Spilling,
}

impl Worker {
    /// Writes batches in the order they were cut. The worker keeps taking new
    /// batches while a write runs, so the batcher never waits on a slow sink;
    /// up to `backlog_max` scans wait in memory, the ones after them go to the
    /// spool (in order: the memory backlog is older than the spool, which is
    /// older than what comes next) until the spool has been replayed.
    async fn run(self, spool: Spool, mut rx: mpsc::Receiver<Acked>) {
        let kind = self.sink.kind();
        // A spool left by an earlier run means: replay before anything new.
        let spilling = if spool.is_empty() {
            Spilling::No
        } else {
            Spilling::Down
        };
        let mut b = Backlog {
            memory: Default::default(),
            scans: 0,
            spool,
            spilling,
        };
        let mut open = true;
        // Set after a failed write: nothing is tried before then.
        let mut retry_at: Option<Instant> = None;
        // Shutdown gives a sink that failed one more try at once.
        let mut tried_at_close = false;
        loop {
            if !open {
                if b.spilling == Spilling::Behind || self.halt.is_set() {
                    // Shutdown while behind (or past the deadline): what memory
                    // holds goes in front of the spool, replayed at the next
                    // start, so that stopping takes a few file writes rather
                    // than the sink's backlog.
                    self.spill_front(&mut b);
                    break;
                }
                if retry_at.is_some() {
                    if tried_at_close {
                        break; // the sink failed again: its spool waits for the next start
                    }
                    tried_at_close = true;
                    retry_at = None;
                }
            }
            if let Some(at) = retry_at {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => retry_at = None,
                    msg = rx.recv(), if open => match msg {
                        Some(m) => self.take(&mut b, m),
                        None => open = false,
                    },
                }
                continue;
            }
            // The next job: the oldest batch in memory, else the oldest in the spool.
            let (batch, ack, from_spool) = if let Some((batch, ack)) = b.memory.pop_front() {
                b.scans -= batch.scans.len();
                (batch, ack, None)
            } else if !b.spool.is_empty() {
                match b.spool.oldest() {
                    Ok(Some((path, batch))) => (Arc::new(batch), None, Some(path)),
                    Ok(None) => {
                        b.spilling = Spilling::No;
                        continue;
                    }
                    Err(SpoolError::Corrupt(path, e)) => {
                        tracing::error!(path = %path.display(), error = %e, "corrupt spool file set aside");
                        let _ = b.spool.quarantine(&path);
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the spool");
                        retry_at = Some(Instant::now() + self.retry);
                        continue;
                    }
                }
            } else {
                if b.spilling != Spilling::No {
                    b.spilling = Spilling::No;
                    tracing::info!(sink = kind.name(), "sink caught up; spool replayed");
                }
                if !open {
                    break;
                }
                match rx.recv().await {
                    Some(m) => self.take(&mut b, m),
                    None => open = false,
                }
                continue;
            };
            // Write it, taking new batches meanwhile.
            let result = {
                let write = self.write(&batch);
                tokio::pin!(write);
                loop {
                    tokio::select! {
                        biased;
                        r = &mut write => break r,
                        msg = rx.recv(), if open => match msg {
                            Some(m) => self.take(&mut b, m),
                            None => {
                                open = false;
                                // Shutdown while behind: this write's batch is
                                // in the spool (a replay) or goes in front of
                                // it, so the write need not be waited for (under
                                // overload one takes seconds), unless the spool
                                // might not take the batch.
                                let room = b.spool.room() / SPOOLED_SCAN_BYTES_MAX;
                                if b.spilling == Spilling::Behind
                                    && (from_spool.is_some() || room > batch.scans.len() as u64)
                                {
                                    self.halt.set();
                                }
                            }
                        },
                    }
                }
            };
            let m = self.metrics.sink(kind);
            match (result, from_spool) {
                (Ok(()), None) => {
                    if let Some(ack) = ack {
                        let _ = ack.send(true);
                    }
                    self.give_back(batch);
                }
                (Ok(()), Some(path)) => {
                    m.replayed.fetch_add(batch.scans.len() as u64, Relaxed);
                    if let Err(e) = b.spool.remove(&path) {
                        // The batch would be replayed again; the sink recognises it.
                        tracing::error!(path = %path.display(), error = %e, "cannot remove a replayed spool file");
                        retry_at = Some(Instant::now() + self.retry);
                    }
                    m.spool_bytes.store(b.spool.bytes(), Relaxed);
                }
                (Err(e), None) => {
                    if matches!(e, crate::sink::SinkError::Halted) {
                        tracing::info!(
                            sink = kind.name(),
                            "write given up at shutdown; its batch goes to the spool"
                        );
                    } else {
                        tracing::warn!(sink = kind.name(), error = %e, "sink write failed; spooling to disk");
                    }
                    // This batch and the memory backlog are older than the spool.
                    b.memory.push_front((batch, ack));
                    b.scans += b.memory[0].0.scans.len();
                    self.spill_front(&mut b);
                    b.spilling = Spilling::Down;
                    retry_at = Some(Instant::now() + self.retry);
                }
                (Err(_), Some(_)) => {
                    b.spilling = Spilling::Down;
                    retry_at = Some(Instant::now() + self.retry);
                }
            }
        }
    }

    /// The vector of a written batch, emptied, back to the batcher when this
    /// worker held the last reference to it (see `Recycled`).
    fn give_back(&self, batch: Arc<Batch>) {
        if let Some(batch) = Arc::into_inner(batch) {
            let mut scans = batch.scans;
            scans.clear();
            let _ = self.recycle.try_send(scans);
        }
    }

    /// A new batch from the batcher: into memory, or to the spool when
    /// batches are spilling or the memory backlog is full.
    fn take(&self, b: &mut Backlog, (batch, ack): Acked) {
        let n = batch.scans.len();
        if b.spilling == Spilling::No && b.scans + n > self.backlog_max && !b.memory.is_empty() {
            tracing::warn!(
                sink = self.sink.kind().name(),
                backlog = b.scans,
                "sink behind; spilling batches to its spool"
            );
            b.spilling = Spilling::Behind;
        }
        if b.spilling == Spilling::No {
            b.scans += n;
            b.memory.push_back((batch, ack));
            return;
        }
        let stored = self.spool_batch(&mut b.spool, &batch, false);
        if let Some(ack) = ack {
            let _ = ack.send(stored);
        }
    }

    /// Moves the memory backlog to the front of the spool, oldest first.
    fn spill_front(&self, b: &mut Backlog) {
        while let Some((batch, ack)) = b.memory.pop_back() {
            b.scans -= batch.scans.len();
            let stored = self.spool_batch(&mut b.spool, &batch, true);
            if let Some(ack) = ack {
                let _ = ack.send(stored);
            }
        }
    }

    /// Writes a batch within the write timeout, or sooner when shutdown sets
    /// a deadline, also while the write is already under way (a write stuck
    /// on a hanging server must not hold the shutdown beyond its deadline:
    /// its batch is spooled instead).
    async fn write(&self, batch: &Arc<Batch>) -> Result<(), crate::sink::SinkError> {
        let m = self.metrics.sink(self.sink.kind());
        let timed_out = || crate::sink::SinkError::Timeout(self.sink.kind().name());
        let mut stop_by = self.stop_by.clone();
        let cap = |deadline: Instant, stop: Option<Instant>| match stop {
            Some(at) => deadline.min(at),
            None => deadline,
        };
        let mut deadline = cap(Instant::now() + self.timeout, *stop_by.borrow());
        let write = self.sink.write_halting(batch, &self.halt);
        tokio::pin!(write);
        let result = loop {
            if deadline <= Instant::now() {
                if stop_by.borrow().is_some_and(|at| at <= deadline) {
                    // The shutdown deadline: the write stops, not only the wait.
                    self.halt.set();
                }
                break Err(timed_out());
            }
            tokio::select! {
                r = &mut write => break r,
                // Past the deadline: handled at the top of the loop.
                _ = tokio::time::sleep_until(deadline) => {}
                changed = stop_by.changed() => {
                    if changed.is_err() {
                        // The recorder is being dropped; the write timeout still holds.
                        break tokio::time::timeout_at(deadline, &mut write)
                            .await
                            .unwrap_or_else(|_| Err(timed_out()));
                    }
                    deadline = cap(deadline, *stop_by.borrow());
                }
            }
        };
        if let (Ok(()), Some(tx)) = (&result, &self.after_write) {
            let _ = tx.try_send(human_scans(&batch.scans));
        }
        match &result {
            Ok(()) => {
                m.written.fetch_add(batch.scans.len() as u64, Relaxed);
            }
            // Given up at shutdown: not the sink's failure.
            Err(crate::sink::SinkError::Halted) => {}
            Err(_) => {
                m.failures.fetch_add(1, Relaxed);
            }
        }
        result
    }

    /// Spools a batch (in front of the others when `front`); false when the
    /// spool refused it (the scans are lost, and counted).
    fn spool_batch(&self, spool: &mut Spool, batch: &Batch, front: bool) -> bool {
        let m = self.metrics.sink(self.sink.kind());
        let n = batch.scans.len() as u64;
        let pushed = if front {
            spool.push_front(batch)
        } else {
            spool.push(batch)
        };
        let stored = match pushed {
            Ok(()) => {
                m.spooled.fetch_add(n, Relaxed);
                true
            }
            Err(e) => {
                m.lost.fetch_add(n, Relaxed);
                tracing::error!(sink = self.sink.kind().name(), scans = n, conversions = batch.conversions.len(), error = %e, "spool refused a batch: lost");
                false
            }
        };
        m.spool_bytes.store(spool.bytes(), Relaxed);
        stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{HeaderSigns, Source};
    use crate::sink::EmbeddedSink;
    use crate::ScanId;
    use codelink_testkit::wait_until;

    const BATCH: usize = 10;
    const BACKLOG: usize = 30;

    /// A worker on `sink` as `Recorder::start` makes one (no shutdown
    /// begun), with the receiving ends of its recycled vectors and of its
    /// shutdown deadline.
    fn worker(
        sink: &EmbeddedSink,
    ) -> (
        Worker,
        mpsc::Receiver<Vec<Scan>>,
        watch::Sender<Option<Instant>>,
    ) {
        let (recycle, recycled) = mpsc::channel(1);
        let (stop, stop_by) = watch::channel(None);
        let worker = Worker {
            after_write: None,
            sink: Sink::Embedded(sink.clone()),
            metrics: Default::default(),
            retry: Duration::from_millis(20),
            timeout: Duration::from_secs(600),
            backlog_max: BACKLOG,
            stop_by,
            halt: Halt::default(),
            recycle,
        };
        (worker, recycled, stop)
    }

    fn config(dir: &std::path::Path) -> RecorderConfig {
        RecorderConfig {
            data_dir: dir.to_path_buf(),
            flush_interval: Duration::from_millis(10),
            batch_max: BATCH,
            queue_capacity: 100_000,
            nice: 0,
            backlog_max: BACKLOG,
            spool_max_bytes: 1 << 30,
            retry_interval: Duration::from_millis(20),
            // Far beyond the test: a write held up is not a failed one.
            write_timeout: Duration::from_secs(600),
            verdicts: Default::default(),
            after_live_write: None,
        }
    }

    fn raw(n: u64, ms: u64) -> RawScan {
        RawScan {
            scan_id: ScanId::from_parts(ms + n, 7, n),
            code: "held".into(),
            channel: String::new(),
            source: Source::Link,
            ip: "203.0.113.7".parse().unwrap(),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
                .into(),
            referer: String::new(),
            country: String::new(),
            visitor_id: format!("v{n}"),
            request_bot: None,
            signs: HeaderSigns::BROWSER,
            unknown_channel: String::new(),
            step: Default::default(),
            route: String::new(),
        }
    }

    /// A sink that cannot keep up (here: held by another write transaction
    /// on its redb file) keeps the batch it writes plus at most `backlog_max`
    /// scans in memory; the rest goes to its spool. Stopped while still held,
    /// the recorder moves what memory holds to the front of the spool. The
    /// write that was under way commits once the file is free, and the next
    /// start replays the whole spool, that batch included: every scan is
    /// stored exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_sink_holds_a_bounded_backlog_and_its_spill_is_replayed_once() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), true, true).unwrap();
        let db = sink.database();
        let held = tokio::task::spawn_blocking(move || db.begin_write().unwrap())
            .await
            .unwrap();
        let (recorder, tasks) =
            Recorder::start(config(dir.path()), vec![Sink::Embedded(sink.clone())]).unwrap();
        let m = || recorder.metrics().sink(SinkKind::Embedded);
        const N: u64 = 1_000;
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            - 3_600_000;
        for n in 0..N {
            recorder.record(raw(n, start));
        }
        assert_eq!(recorder.metrics().dropped_queue_full.load(Relaxed), 0);

        // One batch is being written (held); at most BACKLOG scans wait in
        // memory; the rest is spooled as it comes.
        let bound = N - (BATCH + BACKLOG) as u64;
        let spilled = wait_until(Duration::from_secs(30), || {
            let spooled = m().spooled.load(Relaxed);
            async move { spooled >= bound }
        })
        .await;
        assert!(
            spilled,
            "spooled {} of {N}: more than {} scans held in memory",
            m().spooled.load(Relaxed),
            BATCH + BACKLOG
        );
        assert_eq!(m().written.load(Relaxed), 0);
        assert!(m().spool_bytes.load(Relaxed) > 0);

        // Shutdown while the sink is still held: the write under way is given
        // up (the worker is behind), and it and the memory backlog go to the
        // spool.
        let stopping = {
            let recorder = recorder.clone();
            tokio::spawn(async move { tasks.finish(&recorder, Duration::from_millis(200)).await })
        };
        let all_spooled = wait_until(Duration::from_secs(30), || {
            let spooled = m().spooled.load(Relaxed);
            async move { spooled == N }
        })
        .await;
        assert!(
            all_spooled,
            "spooled {} of {N} at shutdown",
            m().spooled.load(Relaxed)
        );
        assert_eq!(m().lost.load(Relaxed), 0);
        // The file is free again: the given-up write of the first batch ends
        // without a commit (had it committed, its batch id would be stored
        // with it and the replay would skip it).
        held.abort().unwrap();
        stopping.await.unwrap();

        let (recorder, tasks) =
            Recorder::start(config(dir.path()), vec![Sink::Embedded(sink.clone())]).unwrap();
        let m = || recorder.metrics().sink(SinkKind::Embedded);
        let replayed = wait_until(Duration::from_secs(60), || {
            let empty = m().spool_bytes.load(Relaxed) == 0;
            async move { empty }
        })
        .await;
        assert!(
            replayed,
            "spool not replayed: {} bytes left",
            m().spool_bytes.load(Relaxed)
        );
        assert_eq!(m().replayed.load(Relaxed), N);
        assert_eq!(sink.code_stats("held").await.unwrap().total, N);
        tasks.finish(&recorder, Duration::from_secs(5)).await;
        assert_eq!(
            std::fs::read_dir(dir.path().join("spool/embedded"))
                .unwrap()
                .count(),
            0
        );
    }

    /// An earlier batch's vector is used again for the next batch while it
    /// suits its size, and dropped when it is far too large.
    #[test]
    fn a_batch_vector_is_used_again_unless_far_too_large() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut old: Vec<crate::event::Scan> = Vec::with_capacity(6_000);
        old.push(Default::default());
        let at = old.as_ptr();
        tx.try_send(old).unwrap();
        let next = next_scans(&mut rx, 5_000);
        assert_eq!(next.as_ptr(), at, "the vector sent back was not used");
        assert!(next.is_empty() && next.capacity() >= 6_000);

        // Room for 20,000 needed: a new vector (growing would copy 6,000).
        tx.try_send(next).unwrap();
        let grown = next_scans(&mut rx, 20_000);
        assert!(grown.is_empty() && grown.capacity() >= 20_000);
        assert_ne!(grown.as_ptr(), at);

        // The load fell to 10 scans a batch: 20,000 places are not kept.
        tx.try_send(grown).unwrap();
        let small = next_scans(&mut rx, 10);
        assert!(small.capacity() < 1_000, "kept {}", small.capacity());
        assert!(rx.try_recv().is_err(), "the large vector is still waiting");

        // Nothing sent back: a new vector.
        assert!(next_scans(&mut rx, 100).capacity() >= 100);
    }

    /// Shutdown while behind gives up the write under way rather than wait
    /// for it: none of it is committed, its batch goes to the front of the
    /// spool with what memory held, every batch is acknowledged as kept, and
    /// the next start replays them all, each scan stored once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_while_behind_gives_up_the_write_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), true, true).unwrap();
        let spool = || Spool::open(dir.path().join("spool"), 1 << 30).unwrap();
        let mut enricher = Enricher::new(Default::default());
        let mut batch = |from: u64, n: u64| {
            let scans: Vec<_> = (from..from + n)
                .map(|i| enricher.enrich(raw(i, 1_700_000_000_000)))
                .collect();
            Arc::new(Batch::new(scans, Vec::new()))
        };
        // A batch whose write takes a while (a second or more here), then
        // enough small ones to put the worker behind, then shutdown.
        const BIG: u64 = 60_000;
        let (tx, rx) = mpsc::channel(WORKER_CHANNEL);
        let mut acks = Vec::new();
        for (from, n) in [(0, BIG), (BIG, 20), (BIG + 20, 20), (BIG + 40, 20)] {
            let (ack, acked) = oneshot::channel();
            tx.send((batch(from, n), Some(ack))).await.unwrap();
            acks.push(acked);
        }
        drop(tx);
        let (first, _recycled, _stop) = worker(&sink);
        let metrics = first.metrics.clone();
        first.run(spool(), rx).await;
        assert_eq!(
            sink.code_stats("held").await.unwrap().total,
            0,
            "a write was committed"
        );
        for acked in acks {
            assert_eq!(acked.await, Ok(true));
        }
        let m = metrics.sink(SinkKind::Embedded);
        assert_eq!(m.spooled.load(Relaxed), BIG + 60);
        assert_eq!((m.lost.load(Relaxed), m.failures.load(Relaxed)), (0, 0));

        let (_, closed) = mpsc::channel(1);
        let (second, _recycled, _stop) = worker(&sink);
        second.run(spool(), closed).await;
        assert!(spool().is_empty());
        assert_eq!(sink.code_stats("held").await.unwrap().total, BIG + 60);
        let mut ids: Vec<String> = sink
            .all_scans()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.scan_id.to_string())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len() as u64, BIG + 60);
    }

    /// The worker that writes a batch last sends its emptied vector back;
    /// one whose batch is still held elsewhere does not.
    #[tokio::test]
    async fn a_written_batch_gives_its_vector_back() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), true, true).unwrap();
        let (worker, mut recycled, _stop) = worker(&sink);
        let batch = |n: u64| {
            let mut enricher = Enricher::new(Default::default());
            let scans: Vec<_> = (0..n).map(|i| enricher.enrich(raw(i, 1_000))).collect();
            Arc::new(Batch::new(scans, Vec::new()))
        };
        let shared = batch(3);
        let elsewhere = shared.clone();
        worker.give_back(shared);
        assert!(
            recycled.try_recv().is_err(),
            "a batch still held was emptied"
        );
        drop(elsewhere);

        let only = batch(3);
        let capacity = only.scans.capacity();
        worker.give_back(only);
        let back = recycled.try_recv().expect("no vector came back");
        assert!(back.is_empty());
        assert_eq!(back.capacity(), capacity);
    }

    /// The recorder's store threads run at the nice value configured
    /// (`--recorder-nice`); its own thread and the caller's keep theirs.
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_store_threads_run_at_a_lower_priority() {
        // The nice value in a thread's /proc stat: field 19; the fields
        // after the name (in parentheses) start at the state, field 3.
        fn nice(stat: &str) -> Option<i64> {
            let rest = &stat[stat.rfind(')')? + 2..];
            rest.split(' ').nth(16)?.parse().ok()
        }
        // (name, nice) of this process's threads.
        fn threads() -> Vec<(String, i64)> {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|t| {
                    let t = t.ok()?.path();
                    let name = std::fs::read_to_string(t.join("comm")).ok()?;
                    let stat = std::fs::read_to_string(t.join("stat")).ok()?;
                    Some((name.trim().to_string(), nice(&stat)?))
                })
                .collect()
        }
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), true, true).unwrap();
        let mut config = config(dir.path());
        config.nice = 7;
        let (recorder, tasks) =
            Recorder::start(config, vec![Sink::Embedded(sink.clone())]).unwrap();
        for n in 0..5 {
            recorder.record(raw(n, 1_000));
        }
        // The store thread exists once a batch has been written.
        let written = wait_until(Duration::from_secs(30), || {
            let n = recorder
                .metrics()
                .sink(SinkKind::Embedded)
                .written
                .load(Relaxed);
            async move { n == 5 }
        })
        .await;
        assert!(written);
        let seen = threads();
        let of = |name: &str| -> Vec<i64> {
            seen.iter()
                .filter(|(n, _)| n == name)
                .map(|(_, nice)| *nice)
                .collect()
        };
        // Other tests of this binary run recorders at nice 0 meanwhile: a
        // 7 can only be this one's.
        assert!(!of("codelink-record").is_empty(), "threads: {seen:?}");
        assert!(of("codelink-store").contains(&7), "threads: {seen:?}");
        assert!(
            seen.iter()
                .all(|(n, nice)| *nice == 0 || n == "codelink-store"),
            "another thread was lowered: {seen:?}"
        );
        let mine = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        assert_eq!(nice(&mine), Some(0), "the caller's thread was lowered too");
        tasks.finish(&recorder, Duration::from_secs(5)).await;
    }
}
