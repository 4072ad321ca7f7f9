//! Starting, stopping and cold-starting the PLC on request, with upstream's answers as types.
//!
//! The Editor reads these answers from the reply body (`START:OK`, `COMMAND:BUSY`,
//! `START:ERROR_SWITCH_STOP`, …); here they are an [`Outcome`] of a [`Verb`], spelt once in
//! [`Reply::wire`]. The API, the run/stop switch and the tests share these functions.

use crate::rt_link::{LoadRequest, Phase, RetainStart};
use crate::state::App;
use shared_abi::layout::PlcState;
use shared_abi::msg::{Command, CommandStatus};
use std::time::Duration;

const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// What was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Start,
    ColdStart,
    Stop,
}

/// How it went, in upstream's reply family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Start or cold start of a PLC that runs already.
    AlreadyRunning,
    /// A start refused because the run/stop switch reads STOP.
    SwitchStop,
    /// A transition (load, deploy, restart of rt-core) is under way: ask again.
    Busy,
    /// Refused or failed; the runtime log says why.
    Error,
}

/// A verb's outcome, as one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub verb: Verb,
    pub outcome: Outcome,
}

impl Reply {
    /// The reply body's `status` as upstream spells it. `COMMAND:BUSY` is the same for
    /// every verb; a stop has no "already" or switch answers of its own.
    pub fn wire(self) -> &'static str {
        match (self.verb, self.outcome) {
            (_, Outcome::Busy) => "COMMAND:BUSY",
            (Verb::Start, Outcome::Ok) => "START:OK",
            (Verb::Start, Outcome::AlreadyRunning) => "START:ERROR_ALREADY_RUNNING",
            (Verb::Start, Outcome::SwitchStop) => "START:ERROR_SWITCH_STOP",
            (Verb::Start, Outcome::Error) => "START:ERROR",
            (Verb::ColdStart, Outcome::Ok) => "COLD_START:OK",
            (Verb::ColdStart, Outcome::AlreadyRunning) => "COLD_START:ERROR_ALREADY_RUNNING",
            (Verb::ColdStart, Outcome::SwitchStop) => "COLD_START:ERROR_SWITCH_STOP",
            (Verb::ColdStart, Outcome::Error) => "COLD_START:ERROR",
            (Verb::Stop, Outcome::Ok) => "STOP:OK",
            (Verb::Stop, Outcome::AlreadyRunning | Outcome::SwitchStop | Outcome::Error) => "STOP:ERROR",
        }
    }

    pub fn is_ok(self) -> bool {
        self.outcome == Outcome::Ok
    }
}

/// Whether a transition is under way (a load, a deploy, rt-core being replaced).
fn busy(app: &App) -> bool {
    let link = app.plc.state();
    link.is_busy() || link.phase == Phase::Restarting
}

/// Starts the PLC (warm: memory and RETAIN values as they are). From EMPTY, ERROR or safe
/// mode the last good program is loaded again first.
pub async fn start(app: &App) -> Reply {
    let reply = |outcome| Reply { verb: Verb::Start, outcome };
    if busy(app) {
        return reply(Outcome::Busy);
    }
    // The switch is checked first, as upstream: it is authoritative whatever the state.
    if !app.switch.allows_run() {
        app.logs.warn("Start refused: the run/stop switch is at STOP");
        return reply(Outcome::SwitchStop);
    }
    let Some(state) = app.plc.plc_state() else { return reply(Outcome::Error) };
    if app.plc.state().phase == Phase::SafeMode || matches!(state, PlcState::Empty | PlcState::Error) {
        return reply(load_current(app, RetainStart::Warm).await);
    }
    if state == PlcState::Running {
        return reply(Outcome::AlreadyRunning);
    }
    reply(match app.plc.command(Command::Start).await {
        Ok(CommandStatus::Ok) => Outcome::Ok,
        Ok(CommandStatus::AlreadyRunning) => Outcome::AlreadyRunning,
        Ok(CommandStatus::Busy) => Outcome::Busy,
        Ok(CommandStatus::NoProgram | CommandStatus::InError) => load_current(app, RetainStart::Warm).await,
        Ok(other) => {
            app.logs.error(format!("Start refused by rt-core: {}", other.as_str()));
            Outcome::Error
        }
        Err(e) => {
            app.logs.error(format!("Start failed: {e}"));
            Outcome::Error
        }
    })
}

/// A cold restart (IEC 61131-3): the current program is loaded again with every variable,
/// RETAIN ones included, at its declared initial value, the stored RETAIN values are
/// replaced, and the PLC runs. Refused while running (throwing retained values away takes
/// a deliberate stop first) and while the switch reads STOP, as upstream.
pub async fn cold_start(app: &App) -> Reply {
    let reply = |outcome| Reply { verb: Verb::ColdStart, outcome };
    if busy(app) {
        return reply(Outcome::Busy);
    }
    if !app.switch.allows_run() {
        app.logs.warn("Cold start refused: the run/stop switch is at STOP");
        return reply(Outcome::SwitchStop);
    }
    if app.plc.plc_state() == Some(PlcState::Running) && app.plc.state().phase == Phase::Up {
        return reply(Outcome::AlreadyRunning);
    }
    reply(load_current(app, RetainStart::Cold).await)
}

/// Stops the PLC (outputs to zero, memory kept).
pub async fn stop(app: &App) -> Reply {
    let reply = |outcome| Reply { verb: Verb::Stop, outcome };
    if busy(app) {
        return reply(Outcome::Busy);
    }
    if app.plc.plc_state() != Some(PlcState::Running) {
        return reply(Outcome::Error);
    }
    reply(match app.plc.command(Command::Stop).await {
        Ok(CommandStatus::Ok) => Outcome::Ok,
        Ok(CommandStatus::Busy) => Outcome::Busy,
        Ok(_) => Outcome::Error,
        Err(e) => {
            app.logs.error(format!("Stop failed: {e}"));
            Outcome::Error
        }
    })
}

/// Loads the last good program again and runs it.
async fn load_current(app: &App, retain: RetainStart) -> Outcome {
    let Some(program) = app.programs.store.current() else {
        app.logs.warn("Start requested but there is no program: upload one first");
        return Outcome::Error;
    };
    let md5 = app.programs.store.state().md5;
    let library = program.library();
    let image = crate::program::image_conf::configured_for_library(&library);
    let request = LoadRequest { path: &library, start: true, retain, md5: md5.as_deref(), online: None, image };
    match app.plc.load(request, LOAD_TIMEOUT).await {
        Ok(_) => {
            if app.plc.state().phase == Phase::SafeMode {
                app.logs.info("Leaving safe mode: the program was loaded again on request");
            }
            app.plc.leave_safe_mode();
            if retain == RetainStart::Cold {
                app.logs.info("Cold start: every variable, RETAIN ones included, starts at its initial value");
            }
            Outcome::Ok
        }
        Err(e) => {
            app.logs.error(format!("Could not load the program to start it: {e}"));
            Outcome::Error
        }
    }
}

/// Records the run state a successful start or stop leaves (the boot restores it).
pub fn remember_run_state(app: &App, reply: Reply) {
    let run = match (reply.verb, reply.outcome) {
        (Verb::Start | Verb::ColdStart, Outcome::Ok) => true,
        (Verb::Stop, Outcome::Ok) => false,
        _ => return,
    };
    if let Err(e) = app.programs.store.set_run(run) {
        app.logs.error(format!("Could not record the run state: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_upstreams_words() {
        let all = [Outcome::Ok, Outcome::AlreadyRunning, Outcome::SwitchStop, Outcome::Busy, Outcome::Error];
        let wire = |verb| all.map(|outcome| Reply { verb, outcome }.wire());
        assert_eq!(
            wire(Verb::Start),
            ["START:OK", "START:ERROR_ALREADY_RUNNING", "START:ERROR_SWITCH_STOP", "COMMAND:BUSY", "START:ERROR"]
        );
        assert_eq!(
            wire(Verb::ColdStart),
            [
                "COLD_START:OK",
                "COLD_START:ERROR_ALREADY_RUNNING",
                "COLD_START:ERROR_SWITCH_STOP",
                "COMMAND:BUSY",
                "COLD_START:ERROR"
            ]
        );
        assert_eq!(wire(Verb::Stop), ["STOP:OK", "STOP:ERROR", "STOP:ERROR", "COMMAND:BUSY", "STOP:ERROR"]);
        assert!(Reply { verb: Verb::Stop, outcome: Outcome::Ok }.is_ok());
    }
}
