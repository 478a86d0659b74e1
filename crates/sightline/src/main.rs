//! `sightline`: the one binary. Parses the command line, sets up logging and dispatches to
//! the subcommands in `cmd/`.

mod cmd;
mod logging;
mod media;
mod metrics;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Real-time video inference engine: detection, tracking, rules and annotated RTSP output.
#[derive(Debug, Parser)]
#[command(name = "sightline", version, about, long_about = None)]
struct Cli {
    /// Server configuration file (TOML). Every field can also be set from the environment as
    /// SIGHTLINE_<SECTION>__<FIELD>.
    #[arg(
        long = "server-config",
        short = 's',
        global = true,
        env = "SIGHTLINE_CONFIG"
    )]
    server_config: Option<PathBuf>,
    /// Log format: text or json (default from the server config).
    #[arg(long, global = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one source in the foreground: annotated stream on RTSP, events as JSON lines.
    Run(cmd::run::RunArgs),
    /// The demo: the sample clip through the shipped model with the example config.
    Demo(cmd::demo::DemoArgs),
    /// Detect objects in images.
    Infer(cmd::infer::InferArgs),
    /// Read licence plates in images (vehicles found by the detector, or the whole image).
    Anpr(cmd::anpr::AnprArgs),
    /// Upscale a picture with an image-to-image (super-resolution) model.
    Upscale(cmd::upscale::UpscaleArgs),
    /// Manage the model registry.
    #[command(subcommand)]
    Models(cmd::models::ModelsCmd),
    /// The persistent engine with the HTTP API: claims runs from the database and runs them.
    Serve(cmd::serve::EngineArgs),
    /// The engine only, for scale-out on more machines (same database).
    Worker(cmd::serve::EngineArgs),
    /// Create or upgrade the database schema and exit.
    Migrate,
    /// Manage runs in the database (a worker picks them up).
    #[command(subcommand)]
    Runs(cmd::runs::RunsCmd),
    /// Batch jobs: queue video files, follow their progress, read their summary.
    #[command(subcommand)]
    Jobs(cmd::jobs::JobsCmd),
    /// Manage pipeline configs in the database.
    #[command(subcommand)]
    Configs(cmd::runs::ConfigsCmd),
    /// Stored events as JSON lines.
    Events(cmd::events::EventsArgs),
    /// Find stored plate events by plate text (exact, prefix, wildcard, fuzzy).
    #[command(subcommand)]
    Plates(cmd::plates::PlatesCmd),
    /// Recording segments of a run, and clips cut from them.
    #[command(subcommand)]
    Recordings(cmd::recordings::RecordingsCmd),
    /// Print the JSON Schema of the pipeline config.
    Schema,
    /// How many streams this machine carries: limits, one stream, a ramp of N streams.
    Bench(cmd::bench::BenchArgs),
    /// Manage HTTP API bearer tokens.
    #[command(subcommand)]
    Token(cmd::tokens::TokenCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let server = match sightline_config::ServerConfig::load(cli.server_config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            logging::init("text", "info");
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let format = cli.log_format.as_deref().unwrap_or(&server.log.format);
    logging::init(format, &server.log.level);
    let result = match cli.command {
        Command::Run(a) => cmd::run::main(&server, a),
        Command::Demo(a) => cmd::demo::main(&server, a),
        Command::Infer(a) => cmd::infer::main(&server, a),
        Command::Anpr(a) => cmd::anpr::main(&server, a),
        Command::Upscale(a) => cmd::upscale::main(&server, a),
        Command::Models(c) => cmd::models::main(&server, c),
        Command::Token(c) => cmd::tokens::main(&server, c),
        Command::Bench(a) => cmd::bench::main(&server, a),
        Command::Serve(mut a) => {
            a.api = true;
            cmd::serve::main(&server, a)
        }
        Command::Worker(a) => cmd::serve::main(&server, a),
        Command::Migrate => cmd::serve::migrate(&server),
        Command::Runs(c) => cmd::runs::main(&server, c),
        Command::Configs(c) => cmd::runs::configs_main(&server, c),
        Command::Jobs(c) => cmd::jobs::main(&server, c),
        Command::Events(a) => cmd::events::main(&server, a),
        Command::Plates(c) => cmd::plates::main(&server, c),
        Command::Recordings(c) => cmd::recordings::main(&server, c),
        Command::Schema => cmd::print_json(&sightline_config::PipelineConfig::json_schema()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
