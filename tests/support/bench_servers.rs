//! The servers a capacity benchmark measures: the compiled binary started as its own
//! process (so its memory and CPU time can be read from `/proc`), on the setup the
//! `CHATBOX_BENCH_*` variables ask for (see `tests/capacity.rs`).

use crate::process::Server;

/// The secret the benchmarks sign their tokens with.
pub const SECRET: &str = "capacity-K8f3Lq9ZxW2mN7vB4tR6yU1pJ5hG";

/// The servers' environment beyond the common one, and how many replicas to start.
pub struct Setup {
    pub vars: Vec<(String, String)>,
    pub replicas: usize,
    pub label: String,
}

fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The setup the `CHATBOX_BENCH_*` variables ask for.
pub fn setup() -> Setup {
    let redis = setting("CHATBOX_BENCH_HUB").as_deref() == Some("redis");
    let mongodb = redis || setting("CHATBOX_BENCH_STORE").as_deref() == Some("mongodb");
    let unique =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    let mut vars = Vec::new();
    if mongodb {
        vars.push((
            "MONGO_URI".into(),
            setting("MONGO_URI").expect("CHATBOX_BENCH_STORE=mongodb needs MONGO_URI"),
        ));
        vars.push(("MONGO_DATABASE".into(), format!("bench{unique}")));
    }
    let replicas = if redis {
        vars.push(("HUB_BACKEND".into(), "redis".into()));
        vars.push((
            "REDIS_URL".into(),
            setting("REDIS_URL").expect("CHATBOX_BENCH_HUB=redis needs REDIS_URL"),
        ));
        vars.push(("REDIS_KEY_PREFIX".into(), format!("bench{unique}")));
        setting("CHATBOX_BENCH_REPLICAS").map_or(1, |n| n.parse().expect("CHATBOX_BENCH_REPLICAS: a number"))
    } else {
        1
    };
    let label = match (redis, mongodb) {
        (true, _) => {
            format!("Redis hub, {replicas} {}, MongoDB", if replicas == 1 { "replica" } else { "replicas" })
        }
        (false, true) => "one process, MongoDB".to_owned(),
        (false, false) => "one process, memory store".to_owned(),
    };
    Setup { vars, replicas, label }
}

pub async fn start_server() -> Server {
    start_servers(&setup()).await.swap_remove(0)
}

/// Starts the setup's replicas; each is ready when it logs its address.
pub async fn start_servers(setup: &Setup) -> Vec<Server> {
    let mut servers = Vec::with_capacity(setup.replicas);
    for _ in 0..setup.replicas {
        servers.push(start_one(&setup.vars).await);
    }
    servers
}

async fn start_one(vars: &[(String, String)]) -> Server {
    let mut all = vec![
        ("JWT_SECRET", SECRET),
        ("SERVER_HOST", "127.0.0.1"),
        ("SERVER_PORT", "0"),
        ("LLM_PROVIDER_1_ID", "demo"),
        ("LLM_PROVIDER_1_TYPE", "demo"),
        ("LLM_PROVIDER_1_DELAY", "0ms"),
        ("MAX_CONNECTIONS_PER_USER", "10000"),
        ("RATE_LIMIT", "100000"),
        ("WS_COMMAND_BUDGET", "100000"),
        ("LOG_LEVEL", "warn,chatbox=info"),
    ];
    // Later entries win: the setup's own settings override the defaults above.
    all.extend(vars.iter().map(|(name, value)| (name.as_str(), value.as_str())));
    Server::start(&all).await
}
