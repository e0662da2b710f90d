//! When the sidecar's app counts as up: the decision, as logic without I/O. The sidecar checks
//! the app every second; the first answer registers the service (so no caller reaches an app
//! that is still starting), two failed checks in a row deregister it (within 3 s of the app
//! going quiet), and the next answer registers it again.

/// Failed checks in a row that take the service out of the registry.
pub(crate) const FAILURES_TO_DEREGISTER: u32 = 2;

/// What to do after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// The app answers: register the service.
    Register,
    /// The app stopped answering: deregister it.
    Deregister,
}

/// The app's health as the checks have seen it.
#[derive(Debug, Default)]
pub(crate) struct Health {
    failures: u32,
    registered: bool,
}

impl Health {
    /// Takes one check's outcome; answers the change it calls for, if any.
    pub(crate) fn observe(&mut self, answered: bool) -> Option<Change> {
        if answered {
            self.failures = 0;
            if !self.registered {
                self.registered = true;
                return Some(Change::Register);
            }
            return None;
        }
        self.failures = self.failures.saturating_add(1);
        if self.registered && self.failures >= FAILURES_TO_DEREGISTER {
            self.registered = false;
            return Some(Change::Deregister);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_on_the_first_answer_and_leaves_after_two_failures() {
        let mut health = Health::default();
        assert_eq!(
            health.observe(false),
            None,
            "never up: nothing to take down"
        );
        assert_eq!(health.observe(true), Some(Change::Register));
        assert_eq!(health.observe(true), None);
        assert_eq!(health.observe(false), None, "one miss is forgiven");
        assert_eq!(health.observe(true), None);
        assert_eq!(health.observe(false), None);
        assert_eq!(health.observe(false), Some(Change::Deregister));
        assert_eq!(health.observe(false), None);
        assert_eq!(health.observe(true), Some(Change::Register));
    }
}
