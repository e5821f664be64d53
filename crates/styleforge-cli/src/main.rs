//! `styleforge`: restyle photos from the command line, manage the model library, benchmark.

mod avatar;
mod bench;
mod evaluate;
mod models;
mod serve;
mod stylize;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc keeps freed pages mapped for reuse: the engine allocates and drops tensors of tens of
/// megabytes per layer, which the system allocator returns to the kernel and faults in again.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Image style transfer: stylize photos with any method, train new styles, serve them over HTTP,
/// manage the model library, benchmark.
#[derive(Parser, Debug)]
#[command(name = "styleforge", version, about, long_about = None, after_help = stylize::methods_overview())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Restyle one image, several, or a folder, with any method (see below).
    #[command(after_help = stylize::methods_overview())]
    Stylize(stylize::Args),
    /// Make a square avatar: crop the photo around its face (the built-in detector, or --box)
    /// and stylise it with a filter, a model, a painting or an image.
    Avatar(avatar::Args),
    /// List, import, download and remove models.
    Models {
        #[command(subcommand)]
        command: models::Command,
    },
    /// Train new models: fast styles (a style image and photos), CycleGANs (two unpaired
    /// folders), DCGANs (one folder); export them into the library.
    Train {
        #[command(subcommand)]
        command: train::Command,
    },
    /// Sample new images (or a latent interpolation strip) from a DCGAN generator.
    Generate(train::GenerateArgs),
    /// Time the networks at several sizes and print a table.
    Bench(bench::Args),
    /// Compare methods on content × style pairs: SSIM, VGG content and style losses, time and
    /// memory; an HTML report with the image grids and a plot, and a contact sheet.
    Evaluate(evaluate::Args),
    /// Run the HTTP service (REST API, jobs, storage, API keys).
    Serve(serve::Args),
    /// Run job workers against a shared database and blob store (no HTTP listener).
    Worker(serve::WorkerArgs),
    /// Create, list and revoke API keys for the service.
    Keys {
        #[command(subcommand)]
        command: serve::KeysCommand,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("STYLEFORGE_LOG").unwrap_or_else(|_| "warn,tract_onnx=error,tract_hir=error,tract_core=error".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let compute = matches!(cli.command, Command::Stylize(_) | Command::Avatar(_) | Command::Train { .. } | Command::Generate(_) | Command::Bench(_) | Command::Evaluate(_));
    let service = matches!(cli.command, Command::Serve(_) | Command::Worker(_));
    if !service {
        quiet_panics();
    }
    let run = move || match cli.command {
        Command::Stylize(a) => stylize::run(a),
        Command::Avatar(a) => avatar::run(a),
        Command::Models { command } => models::run(command),
        Command::Train { command } => train::run(command),
        Command::Generate(a) => train::generate(a),
        Command::Bench(a) => bench::run(a),
        Command::Evaluate(a) => evaluate::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Worker(a) => serve::worker(a),
        Command::Keys { command } => serve::keys(command),
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        if compute {
            keep_freed_memory();
            styleforge_core::device::on_compute_threads(run)
        } else {
            run()
        }
    }));
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {}", format!("{e:#}").trim_end());
            ExitCode::FAILURE
        }
        Err(payload) => {
            let what = PANIC.lock().ok().and_then(|mut m| m.take()).unwrap_or_else(|| panic_text(payload.as_ref()));
            eprintln!("error: internal error: {what} (a bug in styleforge: please report it with the command that caused it)");
            ExitCode::from(EXIT_BUG)
        }
    }
}

/// The exit code for a bug caught as a panic (`EX_SOFTWARE`); wrong input exits with 1.
const EXIT_BUG: u8 = 70;

/// The last panic's message and place, kept by the hook [`quiet_panics`] installs.
static PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Keeps panic messages for `main`'s one error line instead of printing them with a backtrace
/// hint; with `RUST_BACKTRACE` set, the default report is printed as well (for debugging).
fn quiet_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = panic_text(info.payload());
        // Output piped into a program that stopped reading (`styleforge models list | head`):
        // end quietly, as a program killed by SIGPIPE does.
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            default(info);
        }
        let mut text = message.lines().next().unwrap_or_default().to_string();
        if let Some(at) = info.location() {
            text = format!("{text} (at {}:{})", at.file(), at.line());
        }
        if let Ok(mut slot) = PANIC.lock() {
            slot.get_or_insert(text);
        }
    }));
}

/// A panic payload's message.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h`: the 16th option, v2 and v3 alike).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// For the one-shot compute commands: mimalloc keeps freed memory mapped instead of returning it
/// to the kernel after 10 ms, so a Gatys or training step reuses the previous step's pages
/// instead of faulting in (and having the kernel zero) 130k-160k fresh ones. The service keeps
/// the default, which gives memory back between jobs.
fn keep_freed_memory() {
    // SAFETY: `mi_option_set` only stores an option value; -1 means "never purge".
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}
