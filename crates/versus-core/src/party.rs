//! Parties: who plays together, who leads, who is invited, and the ready check that lets the
//! leader queue everyone as one ticket. Pure rules over one party's state: the caller loads it,
//! applies one action under a lock, stores it, and tells the members. Times are Unix
//! milliseconds, handed in.

use crate::matchmaking::PlayerId;

/// What config allows a party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Members at most (queues may take fewer: a party too big for a queue cannot join it).
    pub max_size: usize,
    /// Invites pending at once.
    pub max_pending_invites: usize,
    pub invite_ttl_ms: i64,
    /// How long members have to answer a ready check.
    pub ready_timeout_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub player: PlayerId,
    pub joined_at: i64,
    /// The answer to the running or last ready check; `None`: not answered (or none asked).
    pub ready: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub player: PlayerId,
    pub invited_by: PlayerId,
    pub expires_at: i64,
}

/// A ready check: running until `deadline`, or passed (every member said yes) and waiting for
/// the leader to queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyCheck {
    pub started_at: i64,
    pub deadline: i64,
    pub passed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub leader: PlayerId,
    /// In the order they joined: the longest-standing first.
    pub members: Vec<Member>,
    pub invites: Vec<Invite>,
    /// Anyone with the party's join code may join, not only the invited.
    pub open: bool,
    pub ready_check: Option<ReadyCheck>,
}

/// Why an action was refused: each is a 4xx for the one who tried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartyError {
    #[error("only the party's members may do this")]
    NotMember,
    #[error("only the party's leader may do this")]
    NotLeader,
    #[error("the party is full ({max} members)")]
    Full { max: usize },
    #[error("already in a party; leave it first")]
    AlreadyInParty,
    #[error("already a member of this party")]
    AlreadyMember,
    #[error("no pending invite for this player")]
    NotInvited,
    #[error("the invite expired")]
    InviteExpired,
    #[error("already invited")]
    AlreadyInvited,
    #[error("too many pending invites (at most {max})")]
    TooManyInvites { max: usize },
    #[error("the join code does not match this party")]
    BadCode,
    #[error("the leader cannot kick themself; leave instead")]
    KickSelf,
    #[error("the player is not a member of this party")]
    NotAMember,
    #[error("no ready check is running; the leader starts one by answering ready")]
    NoReadyCheck,
    #[error("a party member is searching alone; they must leave the queue first")]
    MemberQueued,
    #[error("not every member is ready; the leader starts a ready check")]
    NotReady,
}

/// How a ready answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyOutcome {
    /// The leader started a ready check.
    Started,
    /// An answer was recorded; others are still to answer.
    Answered,
    /// Every member is ready: the leader may queue the party.
    Passed,
    /// A member said no: the check ended.
    Failed,
}

/// What a leave did to the party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// The party goes on; `new_leader` when the leader left.
    Stays { new_leader: Option<PlayerId> },
    /// The last member left.
    Disbanded,
}

impl Party {
    pub fn new(leader: PlayerId, open: bool, now: i64) -> Self {
        Self {
            leader,
            members: vec![Member {
                player: leader,
                joined_at: now,
                ready: None,
            }],
            invites: Vec::new(),
            open,
            ready_check: None,
        }
    }

    pub fn is_member(&self, player: PlayerId) -> bool {
        self.members.iter().any(|m| m.player == player)
    }

    fn must_be_member(&self, player: PlayerId) -> Result<(), PartyError> {
        if self.is_member(player) {
            Ok(())
        } else {
            Err(PartyError::NotMember)
        }
    }

    fn must_lead(&self, player: PlayerId) -> Result<(), PartyError> {
        self.must_be_member(player)?;
        if self.leader == player {
            Ok(())
        } else {
            Err(PartyError::NotLeader)
        }
    }

    /// Drops invites past their expiry.
    pub fn expire_invites(&mut self, now: i64) {
        self.invites.retain(|i| i.expires_at > now);
    }

    /// The leader invites `player`.
    pub fn invite(
        &mut self,
        by: PlayerId,
        player: PlayerId,
        now: i64,
        limits: &Limits,
    ) -> Result<Invite, PartyError> {
        self.must_lead(by)?;
        self.expire_invites(now);
        if self.is_member(player) {
            return Err(PartyError::AlreadyMember);
        }
        if self.invites.iter().any(|i| i.player == player) {
            return Err(PartyError::AlreadyInvited);
        }
        if self.members.len() >= limits.max_size {
            return Err(PartyError::Full {
                max: limits.max_size,
            });
        }
        if self.invites.len() >= limits.max_pending_invites {
            return Err(PartyError::TooManyInvites {
                max: limits.max_pending_invites,
            });
        }
        let invite = Invite {
            player,
            invited_by: by,
            expires_at: now.saturating_add(limits.invite_ttl_ms),
        };
        self.invites.push(invite.clone());
        Ok(invite)
    }

    /// `player` joins: with a pending invite, or with the right code (`code_matches`) when the
    /// party is open. Readiness starts over: the new member has not answered.
    pub fn join(
        &mut self,
        player: PlayerId,
        code_matches: Option<bool>,
        now: i64,
        limits: &Limits,
    ) -> Result<(), PartyError> {
        if self.is_member(player) {
            return Err(PartyError::AlreadyMember);
        }
        let invited = self.invites.iter().position(|i| i.player == player);
        match (invited, code_matches) {
            (Some(i), _) if self.invites[i].expires_at <= now => {
                self.invites.remove(i);
                return Err(PartyError::InviteExpired);
            }
            (Some(_), _) => {}
            (None, Some(true)) if self.open => {}
            (None, Some(_)) => return Err(PartyError::BadCode),
            (None, None) => return Err(PartyError::NotInvited),
        }
        if self.members.len() >= limits.max_size {
            return Err(PartyError::Full {
                max: limits.max_size,
            });
        }
        self.invites.retain(|i| i.player != player);
        self.members.push(Member {
            player,
            joined_at: now,
            ready: None,
        });
        self.reset_readiness();
        Ok(())
    }

    /// `player` leaves; a leaving leader hands over to the longest-standing member.
    pub fn leave(&mut self, player: PlayerId) -> Result<Left, PartyError> {
        self.must_be_member(player)?;
        self.members.retain(|m| m.player != player);
        self.reset_readiness();
        if self.members.is_empty() {
            self.invites.clear();
            return Ok(Left::Disbanded);
        }
        let new_leader = (self.leader == player).then(|| {
            // Members are kept in join order; ties (same millisecond) keep that order too.
            self.leader = self.members[0].player;
            self.leader
        });
        Ok(Left::Stays { new_leader })
    }

    /// The leader removes `player`.
    pub fn kick(&mut self, by: PlayerId, player: PlayerId) -> Result<(), PartyError> {
        self.must_lead(by)?;
        if by == player {
            return Err(PartyError::KickSelf);
        }
        if !self.is_member(player) {
            return Err(PartyError::NotAMember);
        }
        self.members.retain(|m| m.player != player);
        self.reset_readiness();
        Ok(())
    }

    /// A ready answer. The leader saying ready with no check running starts one (the leader
    /// counts as ready); a member's answer counts while one runs; a "no" ends it.
    pub fn ready(
        &mut self,
        player: PlayerId,
        ready: bool,
        now: i64,
        limits: &Limits,
    ) -> Result<ReadyOutcome, PartyError> {
        self.must_be_member(player)?;
        self.expire_ready_check(now);
        let running = self.ready_check.is_some_and(|c| !c.passed);
        if !running {
            if player != self.leader {
                // After a passed check a member may still withdraw.
                if !ready && self.ready_check.is_some() {
                    self.reset_readiness();
                    return Ok(ReadyOutcome::Failed);
                }
                return Err(PartyError::NoReadyCheck);
            }
            if !ready {
                self.reset_readiness();
                return Ok(ReadyOutcome::Failed);
            }
            for m in &mut self.members {
                m.ready = (m.player == player).then_some(true);
            }
            self.ready_check = Some(ReadyCheck {
                started_at: now,
                deadline: now.saturating_add(limits.ready_timeout_ms),
                passed: false,
            });
            return Ok(self.settle(ReadyOutcome::Started));
        }
        if !ready {
            self.reset_readiness();
            return Ok(ReadyOutcome::Failed);
        }
        if let Some(m) = self.members.iter_mut().find(|m| m.player == player) {
            m.ready = Some(true);
        }
        Ok(self.settle(ReadyOutcome::Answered))
    }

    /// Passes the running check when everyone is ready.
    fn settle(&mut self, otherwise: ReadyOutcome) -> ReadyOutcome {
        if self.members.iter().all(|m| m.ready == Some(true))
            && let Some(check) = &mut self.ready_check
        {
            check.passed = true;
            return ReadyOutcome::Passed;
        }
        otherwise
    }

    /// Ends a running check whose deadline has passed; `true` if it did.
    pub fn expire_ready_check(&mut self, now: i64) -> bool {
        match self.ready_check {
            Some(check) if !check.passed && check.deadline <= now => {
                self.reset_readiness();
                true
            }
            _ => false,
        }
    }

    /// Every member said ready in a check that passed.
    pub fn all_ready(&self) -> bool {
        self.ready_check.is_some_and(|c| c.passed)
            && self.members.iter().all(|m| m.ready == Some(true))
    }

    /// The leader may queue the party now.
    pub fn check_can_queue(&self, by: PlayerId) -> Result<(), PartyError> {
        self.must_lead(by)?;
        if self.all_ready() {
            Ok(())
        } else {
            Err(PartyError::NotReady)
        }
    }

    /// No check, nobody ready: after a membership change, a "no", a timeout, or a queue join
    /// that used the passed check.
    pub fn reset_readiness(&mut self) {
        self.ready_check = None;
        for m in &mut self.members {
            m.ready = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_size: 3,
        max_pending_invites: 2,
        invite_ttl_ms: 1_000,
        ready_timeout_ms: 500,
    };

    fn p(n: u128) -> PlayerId {
        PlayerId(n)
    }

    #[test]
    fn invites_are_the_leaders_expire_and_are_bounded() {
        let mut party = Party::new(p(1), false, 0);
        assert_eq!(
            party.invite(p(2), p(3), 0, &LIMITS),
            Err(PartyError::NotMember)
        );
        party.invite(p(1), p(2), 0, &LIMITS).unwrap();
        assert_eq!(
            party.invite(p(1), p(2), 0, &LIMITS),
            Err(PartyError::AlreadyInvited)
        );
        party.invite(p(1), p(3), 0, &LIMITS).unwrap();
        assert_eq!(
            party.invite(p(1), p(4), 0, &LIMITS),
            Err(PartyError::TooManyInvites { max: 2 })
        );
        assert_eq!(
            party.join(p(4), None, 0, &LIMITS),
            Err(PartyError::NotInvited)
        );
        assert_eq!(
            party.join(p(3), None, 1_000, &LIMITS),
            Err(PartyError::InviteExpired)
        );
        party.join(p(2), None, 999, &LIMITS).unwrap();
        assert_eq!(party.members.len(), 2);
        assert!(
            party.invites.is_empty(),
            "used and expired invites are gone"
        );
        assert_eq!(
            party.invite(p(2), p(5), 0, &LIMITS),
            Err(PartyError::NotLeader)
        );
    }

    #[test]
    fn a_full_party_takes_nobody_and_codes_open_only_open_parties() {
        let mut party = Party::new(p(1), true, 0);
        assert_eq!(
            party.join(p(2), Some(false), 0, &LIMITS),
            Err(PartyError::BadCode)
        );
        party.join(p(2), Some(true), 0, &LIMITS).unwrap();
        party.join(p(3), Some(true), 0, &LIMITS).unwrap();
        assert_eq!(
            party.join(p(4), Some(true), 0, &LIMITS),
            Err(PartyError::Full { max: 3 })
        );
        let mut closed = Party::new(p(1), false, 0);
        assert_eq!(
            closed.join(p(2), Some(true), 0, &LIMITS),
            Err(PartyError::BadCode)
        );
    }

    #[test]
    fn a_leaving_leader_hands_over_to_the_longest_standing_and_the_last_disbands() {
        let mut party = Party::new(p(1), true, 0);
        party.join(p(2), Some(true), 10, &LIMITS).unwrap();
        party.join(p(3), Some(true), 20, &LIMITS).unwrap();
        assert_eq!(party.kick(p(2), p(3)), Err(PartyError::NotLeader));
        assert_eq!(party.kick(p(1), p(1)), Err(PartyError::KickSelf));
        assert_eq!(
            party.leave(p(1)),
            Ok(Left::Stays {
                new_leader: Some(p(2))
            })
        );
        assert_eq!(party.leader, p(2));
        party.kick(p(2), p(3)).unwrap();
        assert_eq!(party.kick(p(2), p(3)), Err(PartyError::NotAMember));
        assert_eq!(party.leave(p(2)), Ok(Left::Disbanded));
    }

    #[test]
    fn ready_checks_pass_fail_time_out_and_start_over_on_changes() {
        let mut party = Party::new(p(1), true, 0);
        party.join(p(2), Some(true), 0, &LIMITS).unwrap();
        assert_eq!(
            party.ready(p(2), true, 0, &LIMITS),
            Err(PartyError::NoReadyCheck)
        );
        assert_eq!(party.check_can_queue(p(1)), Err(PartyError::NotReady));
        assert_eq!(
            party.ready(p(1), true, 0, &LIMITS),
            Ok(ReadyOutcome::Started)
        );
        assert_eq!(
            party.ready(p(2), true, 100, &LIMITS),
            Ok(ReadyOutcome::Passed)
        );
        assert_eq!(party.check_can_queue(p(2)), Err(PartyError::NotLeader));
        party.check_can_queue(p(1)).unwrap();
        // A newcomer has not answered: the check starts over.
        party.join(p(3), Some(true), 200, &LIMITS).unwrap();
        assert_eq!(party.check_can_queue(p(1)), Err(PartyError::NotReady));
        assert_eq!(
            party.ready(p(1), true, 300, &LIMITS),
            Ok(ReadyOutcome::Started)
        );
        assert_eq!(
            party.ready(p(2), true, 300, &LIMITS),
            Ok(ReadyOutcome::Answered)
        );
        assert!(!party.expire_ready_check(799));
        assert!(party.expire_ready_check(800), "p3 never answered");
        assert_eq!(
            party.ready(p(3), true, 801, &LIMITS),
            Err(PartyError::NoReadyCheck)
        );
        party.ready(p(1), true, 900, &LIMITS).unwrap();
        assert_eq!(
            party.ready(p(3), false, 900, &LIMITS),
            Ok(ReadyOutcome::Failed)
        );
        assert_eq!(party.ready_check, None);
        // A single-member party is ready as soon as its leader is.
        let mut solo = Party::new(p(9), false, 0);
        assert_eq!(solo.ready(p(9), true, 0, &LIMITS), Ok(ReadyOutcome::Passed));
        // After passing, a member may still withdraw.
        party.ready(p(1), true, 1_000, &LIMITS).unwrap();
        party.ready(p(2), true, 1_000, &LIMITS).unwrap();
        assert_eq!(
            party.ready(p(3), true, 1_000, &LIMITS),
            Ok(ReadyOutcome::Passed)
        );
        assert_eq!(
            party.ready(p(2), false, 1_100, &LIMITS),
            Ok(ReadyOutcome::Failed)
        );
        assert!(!party.all_ready());
    }
}
