//! Batch jobs: a job is a run of a file played once at full speed, so its state is the state
//! of that run seen from the queue (STYLE pattern 6: one place says how they map).

use crate::run::RunState;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker is processing it (or taking it over after its previous worker died).
    Running,
    /// The whole file was processed.
    Completed,
    /// Gave up; the run's `last_error` says why.
    Failed,
    /// Cancelled on request.
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The job state of a run in state `s`.
    pub fn of(s: RunState) -> JobState {
        match s {
            RunState::Pending => JobState::Queued,
            RunState::Starting | RunState::Running | RunState::Retrying | RunState::Stopping => {
                JobState::Running
            }
            RunState::Completed => JobState::Completed,
            RunState::Failed => JobState::Failed,
            RunState::Stopped => JobState::Cancelled,
        }
    }

    /// The run states that show as this job state.
    pub fn run_states(self) -> Vec<RunState> {
        RunState::ALL
            .into_iter()
            .filter(|s| JobState::of(*s) == self)
            .collect()
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_run_state_maps_and_terminal_agrees() {
        for s in RunState::ALL {
            let j = JobState::of(s);
            assert_eq!(j.is_terminal(), s.is_terminal(), "{s} -> {j}");
            assert!(j.run_states().contains(&s));
        }
        for j in JobState::ALL {
            assert!(!j.run_states().is_empty(), "{j} is reachable");
            assert_eq!(JobState::parse(j.as_str()), Some(j));
        }
        assert_eq!(JobState::of(RunState::Stopped), JobState::Cancelled);
    }
}
