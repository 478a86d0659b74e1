//! The run lifecycle: states and the one place that says which transitions are legal
//! (STYLE pattern 6).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for a worker to claim it.
    Pending,
    /// Claimed; opening the source and loading models.
    Starting,
    /// Frames flowing.
    Running,
    /// Source lost; reconnecting per the run's policy while the output shows a slate.
    Retrying,
    /// Stop requested; draining.
    Stopping,
    /// Stopped on request (terminal).
    Stopped,
    /// A finite source reached its end (terminal).
    Completed,
    /// Gave up; `last_error` says why (terminal).
    Failed,
}

/// An illegal transition was attempted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal run transition {from} -> {to}")]
pub struct TransitionError {
    pub from: RunState,
    pub to: RunState,
}

impl RunState {
    pub const ALL: [RunState; 8] = [
        RunState::Pending,
        RunState::Starting,
        RunState::Running,
        RunState::Retrying,
        RunState::Stopping,
        RunState::Stopped,
        RunState::Completed,
        RunState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Starting => "starting",
            RunState::Running => "running",
            RunState::Retrying => "retrying",
            RunState::Stopping => "stopping",
            RunState::Stopped => "stopped",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Terminal states never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Stopped | RunState::Completed | RunState::Failed
        )
    }

    /// States in which a worker owns the run and its pipeline exists.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            RunState::Starting | RunState::Running | RunState::Retrying | RunState::Stopping
        )
    }

    /// The legal transitions. `X -> Pending` is a lease released on shutdown; `X -> Starting`
    /// from an active state is a restart (watchdog, takeover of an expired lease).
    pub fn can_transition_to(self, to: RunState) -> bool {
        use RunState::*;
        matches!(
            (self, to),
            (Pending, Starting | Stopped | Failed)
                | (
                    Starting,
                    Running | Retrying | Stopping | Completed | Failed | Pending | Starting
                )
                | (
                    Running,
                    Retrying | Stopping | Completed | Failed | Pending | Starting
                )
                | (Retrying, Running | Stopping | Failed | Pending | Starting)
                | (Stopping, Stopped | Completed | Failed | Pending)
        )
    }

    /// `Ok(to)` if legal.
    pub fn transition(self, to: RunState) -> Result<RunState, TransitionError> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to })
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_are_final() {
        for from in RunState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in RunState::ALL {
                assert!(!from.can_transition_to(to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn main_path_is_legal() {
        use RunState::*;
        let path = [
            Pending, Starting, Running, Retrying, Running, Stopping, Stopped,
        ];
        for w in path.windows(2) {
            assert!(w[0].transition(w[1]).is_ok(), "{} -> {}", w[0], w[1]);
        }
        assert!(Pending.transition(Running).is_err());
        assert!(Running.transition(Stopped).is_err());
    }

    #[test]
    fn names_round_trip() {
        for s in RunState::ALL {
            assert_eq!(RunState::parse(s.as_str()), Some(s));
        }
    }
}
