//! The live inventory: list+watch of Pods and Namespaces on the API server,
//! through kube's watcher (resourceVersion tracking, bookmarks, relist on
//! 410 Gone, exponential backoff), into a `Store`. A thread of its own runs
//! the async client; the reconcile loop stays synchronous and reads the
//! store through the `Inventory` trait, woken once per burst of changes.

/// Called once per burst of inventory changes; the return value (whether
/// anyone still listens) is ignored, since the watch runs for the process's
/// life.
pub type OnChange = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};
use k8s_openapi::api::core::v1 as api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;

use crate::store::Store;
use netward_policy::model::Cluster;

/// Where to find the API server.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// A kubeconfig file; without it: in-cluster config, then `KUBECONFIG`, then `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig other than its current one.
    pub context: Option<String>,
    /// How often the watches start over from a full list (default 10 minutes).
    pub resync: Duration,
}

impl ApiOptions {
    /// The kubeconfig and context to use (kube's defaults where None), a
    /// full relist every ten minutes.
    pub fn new(kubeconfig: Option<PathBuf>, context: Option<String>) -> Self {
        ApiOptions { kubeconfig, context, resync: Duration::from_secs(600) }
    }
}

/// How changes are coalesced into reconcile passes: a burst ends after
/// `QUIET` without a relevant event, or `LONGEST` after it began, whichever
/// comes first. A 500-pod rollout is one or a few passes, each one batch.
const QUIET: Duration = Duration::from_millis(25);
const LONGEST: Duration = Duration::from_millis(250);
const PROBE_EVERY: Duration = Duration::from_secs(2);

struct State {
    store: Store,
    /// Broken watchers: resource -> (the last error, whether it was the
    /// connection rather than the API's answer, such as a 403).
    broken: BTreeMap<&'static str, Broken>,
}

#[derive(Clone, Debug)]
struct Broken {
    error: String,
    transport: bool,
}

struct Shared {
    state: Mutex<State>,
    synced: Condvar,
}

/// The inventory the API server keeps, kept current by a watch thread.
pub struct ApiInventory {
    shared: Arc<Shared>,
    client: kube::Client,
    runtime: tokio::runtime::Handle,
    /// How long the first pass waits for the initial lists.
    pub sync_timeout: Duration,
}

/// Why the Kubernetes edge failed, and whether trying again can help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig (or the in-cluster configuration) is missing or
    /// wrong: only fixing it helps.
    #[error("kubernetes configuration: {0}")]
    Config(String),
    /// The API server did not answer, or answered an error that may pass
    /// (a restart, a network blip, a list cut short).
    #[error("kubernetes API: {0}")]
    Api(String),
    /// The client's runtime or thread could not start.
    #[error("{0}")]
    Runtime(String),
}

impl KubeError {
    /// Whether the same call may succeed when made again.
    pub fn retryable(&self) -> bool {
        !matches!(self, KubeError::Config(_))
    }
}

/// Builds a client from the options (kubeconfig or in-cluster).
pub async fn client(opts: &ApiOptions) -> Result<kube::Client, KubeError> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kc_opts = KubeConfigOptions { context: opts.context.clone(), ..Default::default() };
    let config = match &opts.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| KubeError::Config(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &kc_opts).await.map_err(|e| format!("{}: {e}", path.display()))
        }
        None if opts.context.is_some() => kube::Config::from_kubeconfig(&kc_opts).await.map_err(|e| e.to_string()),
        None => kube::Config::infer().await.map_err(|e| e.to_string()),
    }
    .map_err(KubeError::Config)?;
    kube::Client::try_from(config).map_err(|e| KubeError::Config(format!("client: {e}")))
}

/// Lists pods, namespaces and nodes once: the inventory `netward snapshot` exports.
pub fn list_once(opts: &ApiOptions) -> Result<Cluster, KubeError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| KubeError::Runtime(format!("tokio runtime: {e}")))?;
    rt.block_on(async {
        let client = client(opts).await?;
        let mut store = Store::default();
        list_all("namespaces", kube::Api::<api::Namespace>::all(client.clone()), |e| {
            store.namespace_event(e);
        })
        .await?;
        list_all("nodes", kube::Api::<api::Node>::all(client.clone()), |e| {
            store.node_event(e);
        })
        .await?;
        list_all("pods", kube::Api::<api::Pod>::all(client), |e| {
            store.pod_event(e);
        })
        .await?;
        Ok(store.cluster())
    })
}

/// Lists every object page by page, as `Init`, `InitApply`..., `InitDone`.
async fn list_all<K>(what: &str, api: kube::Api<K>, mut apply: impl FnMut(Event<K>)) -> Result<(), KubeError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    apply(Event::Init);
    let mut params = kube::api::ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await.map_err(|e| KubeError::Api(format!("listing {what}: {e}")))?;
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        for item in page.items {
            apply(Event::InitApply(item));
        }
        match next {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    apply(Event::InitDone);
    Ok(())
}

/// A runtime on a thread of its own: the reconcile loop is synchronous.
pub fn runtime_thread() -> Result<tokio::runtime::Handle, KubeError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("kube".into())
        .spawn(move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => {
                let _ = tx.send(Ok(rt.handle().clone()));
                // Drives every task spawned on the handle, for the process's life.
                rt.block_on(std::future::pending::<()>());
            }
            Err(e) => {
                let _ = tx.send(Err(KubeError::Runtime(format!("tokio runtime: {e}"))));
            }
        })
        .map_err(|e| KubeError::Runtime(format!("kube thread: {e}")))?;
    rx.recv().map_err(|_| KubeError::Runtime("kube thread ended".into()))?
}

impl ApiInventory {
    /// Connects (reads the config) and starts watching. `on_change` is
    /// called once per burst of changes once the initial lists are in.
    pub fn connect(opts: &ApiOptions, on_change: Option<OnChange>) -> Result<Self, KubeError> {
        let runtime = runtime_thread()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let opts2 = opts.clone();
        runtime.spawn(async move {
            let _ = tx.send(client(&opts2).await);
        });
        let client = rx.recv().map_err(|_| KubeError::Runtime("kube thread ended".into()))??;
        let shared = Arc::new(Shared {
            state: Mutex::new(State { store: Store::default(), broken: BTreeMap::new() }),
            synced: Condvar::new(),
        });
        runtime.spawn(watch(client.clone(), shared.clone(), on_change.clone(), opts.resync));
        runtime.spawn(probe_while_broken(client.clone(), shared.clone(), on_change));
        Ok(ApiInventory { shared, client, runtime, sync_timeout: Duration::from_secs(30) })
    }

    /// Pods the store holds now (for tests and benchmarks).
    pub fn pod_count(&self) -> usize {
        self.shared.state.lock().map(|s| s.store.pod_count()).unwrap_or(0)
    }

    /// A handle that writes the applied revision on Node objects.
    pub fn publisher(&self) -> Publisher {
        Publisher { client: self.client.clone(), runtime: self.runtime.clone() }
    }
}

/// Writes rollout progress where `kubectl` shows it.
pub struct Publisher {
    client: kube::Client,
    runtime: tokio::runtime::Handle,
}

impl Publisher {
    /// Writes `netward.io/revision` and `netward.io/result` on this node's
    /// Node object (a merge patch, in the background), so `kubectl get nodes
    /// -o custom-columns=...` shows a rollout's progress.
    pub fn publish(&self, node: &str, revision: &str, result: &str) {
        let nodes: kube::Api<api::Node> = kube::Api::all(self.client.clone());
        let patch = serde_json::json!({ "metadata": { "annotations": {
            "netward.io/revision": revision, "netward.io/result": result } } });
        let node = node.to_string();
        self.runtime.spawn(async move {
            let params = kube::api::PatchParams::default();
            if let Err(e) = nodes.patch(&node, &params, &kube::api::Patch::Merge(&patch)).await {
                tracing::warn!(node = %node, error = %e, "publishing the applied revision");
            }
        });
    }
}

impl ApiInventory {
    /// The cluster as the store holds it, once the first lists are in
    /// (waits for them up to 30 s).
    pub fn current(&mut self) -> Result<Cluster, String> {
        let deadline = Instant::now() + self.sync_timeout;
        let mut state = self.shared.state.lock().map_err(|_| "inventory lock poisoned".to_string())?;
        while !state.store.synced() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no inventory from the Kubernetes API after {}s{}",
                    self.sync_timeout.as_secs(),
                    state.broken.values().next().map(|b| format!(": {}", b.error)).unwrap_or_default()
                ));
            }
            state = self.shared.synced.wait_timeout(state, left).map_err(|_| "inventory lock poisoned".to_string())?.0;
        }
        Ok(state.store.cluster())
    }

    /// Bumped on every change the store takes.
    pub fn generation(&self) -> u64 {
        self.shared.state.lock().map(|s| s.store.generation()).unwrap_or(0)
    }

    /// Calico network sets the cluster holds.
    pub fn network_sets(&self) -> Vec<netward_policy::model::NetworkSet> {
        self.shared.state.lock().map(|s| s.store.network_sets()).unwrap_or_default()
    }

    /// Whether every watch is running and the first lists are in.
    pub fn health(&self) -> Result<(), String> {
        match self.shared.state.lock() {
            Ok(s) => match s.broken.iter().next() {
                Some((what, b)) => Err(format!("Kubernetes API watch broken ({what}): {}", b.error)),
                None if !s.store.synced() => Err("waiting for the first list from the Kubernetes API".into()),
                None => Ok(()),
            },
            Err(_) => Err("inventory lock poisoned".into()),
        }
    }
}

/// Exponential backoff between failed list/watch calls (0.8 s doubling to
/// 30 s, with jitter), back to the start after two quiet minutes. kube's
/// default one is reset by every successful item, and the watcher yields
/// one (`Init`) before each relist, so against a dead server it retried
/// every 0.8 s forever; this one ignores resets and keeps its own clock.
struct Backoff {
    next: Duration,
    last: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Duration::from_millis(800), last: None }
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.last.is_some_and(|t| t.elapsed() > Duration::from_secs(120)) {
            self.next = Duration::from_millis(800);
        }
        self.last = Some(Instant::now());
        let now = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(30));
        // Up to a quarter less, so a fleet of nodes does not retry in step.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos());
        let jitter = now.mul_f64(f64::from(nanos.unwrap_or(0) % 1000) / 4000.0);
        Some(now - jitter)
    }
}

impl kube::runtime::utils::Backoff for Backoff {
    fn reset(&mut self) {}
}

/// What applying one watch item did.
#[derive(Clone, Copy)]
struct Step {
    changed: bool,
    synced: bool,
    became_synced: bool,
    health_moved: bool,
}

/// Applies one item of a watcher's stream to the store, under its lock.
fn step<K>(
    shared: &Shared,
    what: &'static str,
    item: Result<Event<K>, watcher::Error>,
    apply: &impl Fn(&mut Store, Event<K>) -> bool,
) -> Option<Step> {
    let mut state = shared.state.lock().ok()?;
    let was_synced = state.store.synced();
    let was_healthy = state.broken.is_empty();
    let changed = match item {
        // `Init` comes before the list request, so it says nothing of the server.
        Ok(Event::Init) => apply(&mut state.store, Event::Init),
        Ok(e) => {
            if state.broken.remove(what).is_some() {
                tracing::info!(watch = what, "kubernetes watch resumed");
            }
            apply(&mut state.store, e)
        }
        Err(e) => {
            use watcher::Error as W;
            let transport = match &e {
                W::InitialListFailed(k) | W::WatchStartFailed(k) | W::WatchFailed(k) => {
                    !matches!(k, kube::Error::Api(_))
                }
                W::WatchError(_) | W::NoResourceVersion => false,
            };
            // Once per outage, not once per retry.
            if !state.broken.contains_key(what) {
                tracing::warn!(watch = what, error = %e, "kubernetes watch broken (retrying with backoff; the last inventory stays)");
            }
            state.broken.insert(what, Broken { error: e.to_string(), transport });
            false
        }
    };
    let synced = state.store.synced();
    Some(Step {
        changed,
        synced,
        became_synced: synced && !was_synced,
        health_moved: was_healthy != state.broken.is_empty(),
    })
}

/// The watch task: finds out whether Calico's sets are served, then runs
/// every watcher merged into one stream, each item applied to the store as
/// it arrives, one wake sent per burst of changes.
async fn watch(client: kube::Client, shared: Arc<Shared>, wake: Option<OnChange>, resync: Duration) {
    let sets = calico_sets_served(&client, &shared).await;
    match shared.state.lock() {
        Ok(mut s) if sets => s.store.watch_network_sets(),
        Ok(_) => {
            tracing::info!("no Calico network set CRDs on this cluster: network sets come from the repository only")
        }
        Err(_) => return,
    }
    // (when the burst began, when its last change came)
    let mut burst: Option<(Instant, Instant)> = None;
    // Every `resync` (give or take a tenth, so nodes do not relist in step)
    // the watchers start over with a fresh list, which the store swaps in
    // whole: whatever a watch might have missed is repaired.
    loop {
        let mut streams = vec![
            watched("pods", kube::Api::<api::Pod>::all(client.clone()), shared.clone(), Store::pod_event),
            watched(
                "namespaces",
                kube::Api::<api::Namespace>::all(client.clone()),
                shared.clone(),
                Store::namespace_event,
            ),
            watched("nodes", kube::Api::<api::Node>::all(client.clone()), shared.clone(), Store::node_event),
        ];
        if sets {
            for (global, kind, plural) in
                [(false, "NetworkSet", "networksets"), (true, "GlobalNetworkSet", "globalnetworksets")]
            {
                let gvk = kube::api::GroupVersionKind::gvk(CALICO_CRDS.0, CALICO_CRDS.1, kind);
                let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, plural);
                let api = kube::Api::<kube::api::DynamicObject>::all_with(client.clone(), &resource);
                streams
                    .push(watched(plural, api, shared.clone(), move |s: &mut Store, e| s.network_set_event(global, e)));
            }
        }
        let mut steps = stream::select_all(streams);
        let resync_at = tokio::time::Instant::now() + jittered(resync);
        loop {
            // A burst ends after QUIET without a change or LONGEST after it
            // began, however many unrelated events keep arriving.
            let burst_ends = burst.map(|(began, last)| (began + LONGEST).min(last + QUIET));
            let flush_at = burst_ends.map(tokio::time::Instant::from_std).unwrap_or(resync_at);
            let next = tokio::select! {
                _ = tokio::time::sleep_until(resync_at) => break,
                _ = tokio::time::sleep_until(flush_at), if burst.is_some() => {
                    burst = None;
                    notify(&wake);
                    continue;
                }
                n = steps.next() => n,
            };
            let Some(Some(step)) = next else { return };
            if step.became_synced {
                shared.synced.notify_all();
            }
            // Readiness follows the watch, and a first pass that timed out
            // waiting for the lists is retried: a pass records either.
            if (step.health_moved || step.became_synced) && step.synced {
                notify(&wake);
            }
            if step.changed && step.synced {
                let now = Instant::now();
                burst = Some(burst.map_or((now, now), |(began, _)| (began, now)));
            }
        }
    }
}

fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos());
    d.mul_f64(0.9 + f64::from(nanos.unwrap_or(0) % 1000) / 5000.0)
}

type Steps = std::pin::Pin<Box<dyn futures_util::Stream<Item = Option<Step>> + Send>>;

/// One resource's watcher, with backoff, applying each item to the store.
fn watched<K>(
    what: &'static str,
    api: kube::Api<K>,
    shared: Arc<Shared>,
    apply: impl Fn(&mut Store, Event<K>) -> bool + Send + 'static,
) -> Steps
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    Box::pin(
        watcher::watcher(api, watcher::Config::default())
            .backoff(Backoff::default())
            .map(move |e| step(&shared, what, e, &apply)),
    )
}

/// Calico's CRDs (a cluster with the Calico API server serves the same
/// objects as projectcalico.org/v3 too; the CRDs exist either way).
const CALICO_CRDS: (&str, &str) = ("crd.projectcalico.org", "v1");

/// Whether the API server serves Calico's network set CRDs. Only an answer
/// counts: 404 (no such group) is "no"; anything else (a server still
/// starting) is asked again with backoff, shown as a broken watch meanwhile.
async fn calico_sets_served(client: &kube::Client, shared: &Shared) -> bool {
    let mut backoff = Backoff::default();
    loop {
        match client.list_api_group_resources(&format!("{}/{}", CALICO_CRDS.0, CALICO_CRDS.1)).await {
            Ok(list) => {
                if let Ok(mut s) = shared.state.lock() {
                    s.broken.remove("discovery");
                }
                return ["networksets", "globalnetworksets"]
                    .iter()
                    .all(|p| list.resources.iter().any(|r| r.name == *p));
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {
                if let Ok(mut s) = shared.state.lock() {
                    s.broken.remove("discovery");
                }
                return false;
            }
            Err(e) => {
                if let Ok(mut s) = shared.state.lock() {
                    s.broken.insert("discovery", Broken { error: e.to_string(), transport: true });
                }
                tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(30))).await;
            }
        }
    }
}

/// A resumed watch with nothing to say yields no event (bookmarks are
/// swallowed by the watcher), so while the watch is broken the server is
/// asked for its version every few seconds; an answer means it is back.
async fn probe_while_broken(client: kube::Client, shared: Arc<Shared>, wake: Option<OnChange>) {
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        // An API answer such as 403 stays broken until that watch succeeds.
        let down = shared.state.lock().map(|s| s.broken.values().any(|b| b.transport)).unwrap_or(false);
        if !down || client.apiserver_version().await.is_err() {
            continue;
        }
        let Ok(mut state) = shared.state.lock() else { return };
        let before = state.broken.len();
        state.broken.retain(|what, b| !b.transport || *what == "discovery");
        let healthy = state.broken.is_empty();
        drop(state);
        if before > 0 && healthy {
            tracing::info!("kubernetes API server answers again");
            notify(&wake);
        }
    }
}

fn notify(wake: &Option<OnChange>) {
    if let Some(on_change) = wake {
        on_change();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubeconfig_that_cannot_be_read_is_configuration_not_weather() {
        let opts = ApiOptions::new(Some(PathBuf::from("/nonexistent/kubeconfig")), None);
        let e = list_once(&opts).expect_err("no such file");
        assert!(matches!(e, KubeError::Config(ref m) if m.contains("/nonexistent/kubeconfig")), "{e}");
        assert!(!e.retryable());
        assert!(KubeError::Api("listing pods: connection refused".into()).retryable());
    }
}
