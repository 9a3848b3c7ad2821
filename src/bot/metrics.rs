//! What the bot did and holds, for people and Prometheus: `GET /metrics` (text exposition) and `GET /status`
//! (JSON: the last decision per category, with its reason) on the bot's own small listener.

use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// The last decision of one category.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CategoryView {
    pub category: u64,
    pub strategy: &'static str,
    /// The action of the last tick (`keep`, `publish`, `renew`, `raise`, `lower`, `reprice`, `withdraw`) or
    /// `error`.
    pub action: String,
    pub reason: String,
    /// The open offer: its hash, price and remaining volume (none when nothing is offered).
    pub order_hash: Option<String>,
    pub price: u64,
    pub volume: u64,
}

#[derive(Debug, Default)]
struct Inner {
    free: u64,
    alive: u64,
    ticks: u64,
    categories: BTreeMap<u64, CategoryView>,
    /// (category, strategy, action) → decisions that changed the book.
    decisions: BTreeMap<(u64, &'static str, &'static str), u64>,
    /// (category, event) → orders published, withdrawn, renewed.
    orders: BTreeMap<(u64, &'static str), u64>,
    /// (category, reason) → failed calls to the exchange.
    errors: BTreeMap<(u64, String), u64>,
    /// reason → failed reads of the pool's capacity.
    pool_errors: BTreeMap<String, u64>,
}

/// Shared between the loop and the listener.
#[derive(Debug, Clone, Default)]
pub struct Metrics(Arc<Mutex<Inner>>);

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A panic while holding the lock cannot leave these counters inconsistent in a way that matters.
        let mut g = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }

    pub fn capacity(&self, alive: u64, free: u64) {
        self.with(|m| {
            m.alive = alive;
            m.free = free;
            m.ticks += 1;
        });
    }

    pub fn decision(&self, view: CategoryView, action: &'static str) {
        self.with(|m| {
            if action != "keep" {
                *m.decisions.entry((view.category, view.strategy, action)).or_default() += 1;
            }
            m.categories.insert(view.category, view);
        });
    }

    pub fn order(&self, category: u64, event: &'static str) {
        self.with(|m| *m.orders.entry((category, event)).or_default() += 1);
    }

    pub fn error(&self, category: u64, reason: String, view: Option<CategoryView>) {
        self.with(|m| {
            *m.errors.entry((category, reason)).or_default() += 1;
            if let Some(v) = view {
                m.categories.insert(category, v);
            }
        });
    }

    pub fn pool_error(&self, reason: String) {
        self.with(|m| *m.pool_errors.entry(reason).or_default() += 1);
    }

    pub fn status(&self) -> serde_json::Value {
        self.with(|m| {
            serde_json::json!({
                "free": m.free,
                "alive": m.alive,
                "ticks": m.ticks,
                "categories": m.categories.values().collect::<Vec<_>>(),
            })
        })
    }

    pub fn render(&self) -> String {
        self.with(|m| {
            let mut o = String::new();
            let head = |o: &mut String, name: &str, kind: &str, help: &str| {
                let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
            };
            head(&mut o, "dragon_bot_free_capacity", "gauge", "Free task slots of the pool at the last tick.");
            let _ = writeln!(o, "dragon_bot_free_capacity {}", m.free);
            head(&mut o, "dragon_bot_alive_workers", "gauge", "Alive workers of the pool at the last tick.");
            let _ = writeln!(o, "dragon_bot_alive_workers {}", m.alive);
            head(&mut o, "dragon_bot_ticks_total", "counter", "Ticks run.");
            let _ = writeln!(o, "dragon_bot_ticks_total {}", m.ticks);
            head(&mut o, "dragon_bot_price", "gauge", "Price of the open offer (nRLC).");
            for v in m.categories.values() {
                let _ = writeln!(
                    o,
                    "dragon_bot_price{{category=\"{}\",strategy=\"{}\"}} {}",
                    v.category, v.strategy, v.price
                );
            }
            head(&mut o, "dragon_bot_volume", "gauge", "Remaining volume of the open offer.");
            for v in m.categories.values() {
                let _ = writeln!(
                    o,
                    "dragon_bot_volume{{category=\"{}\",strategy=\"{}\"}} {}",
                    v.category, v.strategy, v.volume
                );
            }
            head(&mut o, "dragon_bot_decisions_total", "counter", "Decisions that changed the book, by action.");
            for ((c, s, a), n) in &m.decisions {
                let _ =
                    writeln!(o, "dragon_bot_decisions_total{{category=\"{c}\",strategy=\"{s}\",action=\"{a}\"}} {n}");
            }
            head(&mut o, "dragon_bot_orders_total", "counter", "Orders published, withdrawn and renewed.");
            for ((c, e), n) in &m.orders {
                let _ = writeln!(o, "dragon_bot_orders_total{{category=\"{c}\",event=\"{e}\"}} {n}");
            }
            head(&mut o, "dragon_bot_errors_total", "counter", "Failed calls to the exchange, by category.");
            for ((c, r), n) in &m.errors {
                let _ = writeln!(o, "dragon_bot_errors_total{{category=\"{c}\",reason=\"{r}\"}} {n}");
            }
            head(&mut o, "dragon_bot_pool_errors_total", "counter", "Failed reads of the pool's capacity.");
            for (r, n) in &m.pool_errors {
                let _ = writeln!(o, "dragon_bot_pool_errors_total{{reason=\"{r}\"}} {n}");
            }
            o
        })
    }
}

/// Serves `/metrics` and `/status` on `listener` until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let data = web::Data::new(metrics);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route(
                "/metrics",
                web::get().to(|m: web::Data<Metrics>| async move {
                    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(m.render())
                }),
            )
            .route("/status", web::get().to(|m: web::Data<Metrics>| async move { HttpResponse::Ok().json(m.status()) }))
            .default_service(web::to(|| async {
                HttpResponse::NotFound()
                    .json(serde_json::json!({"ok": false, "error": "route not found", "code": "not_found"}))
            }))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(2)
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::select! {
        res = server => res,
        () = stop => {
            handle.stop(true).await;
            Ok(())
        }
    }
}
