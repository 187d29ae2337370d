//! Parties: friends who play together. The rules are `versus_core::party`; the store keeps each
//! party (a change is one transaction under the party's lock, so of twenty players racing for one
//! free slot exactly one gets it); this service runs them, queues a ready party as one ticket,
//! cancels that ticket when the party changes under it, and tells every member what happened, in
//! order (`party_update` carries the party's version).
//!
//! Why in the store and not in memory like queue tickets: a party outlives matches, server
//! restarts and (with the scale-out issue) the node its leader talks to; it is a handful of rows
//! written a few times per game.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use time::OffsetDateTime;
use uuid::Uuid;
use versus_core::matchmaking::PlayerId;
use versus_core::party::{Left, Limits, Party, PartyError, ReadyOutcome};
use versus_protocol::parties::{
    PartyInviteEvent, PartyInviteView, PartyMemberView, PartyQueueView, PartyUpdate, PartyView,
    ReadyCheckEvent, ReadyCheckState, ReadyCheckView,
};
use versus_protocol::queue::{JoinQueueRequest, TicketState, TicketView};
use versus_protocol::ws::ServerEvent;
use versus_store::{PartyRecord, Store, StoreError};

use crate::config::PartiesConfig;
use crate::services::cluster::Leadership;
use crate::services::events::{Audience, BusEvent, EventBus};
use crate::services::hub::Hub;
use crate::services::matchmaking::{JoinError, Joined, Matchmaking};

#[derive(Debug, thiserror::Error)]
pub enum PartiesError {
    #[error("{0}")]
    Rule(#[from] PartyError),
    #[error("no such party")]
    NotFound,
    #[error("no such player")]
    UnknownPlayer,
    #[error("the party changed while it was being queued; queue again")]
    ChangedWhileQueueing,
    #[error("in a party: its leader queues the whole party (party_id)")]
    InParty,
    #[error("{0}")]
    Join(#[from] JoinError),
    #[error("party storage failed")]
    Store(#[from] StoreError),
}

pub struct Parties {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    matchmaking: Arc<Matchmaking>,
    limits: Limits,
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn time_of(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn id(player: Uuid) -> PlayerId {
    PlayerId(player.as_u128())
}

/// Readable by anyone it is shown to, hard to guess: 10 characters of a 32-letter alphabet.
fn join_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..10)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl Parties {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn EventBus>,
        matchmaking: Arc<Matchmaking>,
        config: &PartiesConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            bus,
            matchmaking,
            limits: Limits {
                max_size: config.max_size,
                max_pending_invites: config.max_pending_invites,
                invite_ttl_ms: i64::try_from(config.invite_ttl_secs * 1000).unwrap_or(i64::MAX),
                ready_timeout_ms: i64::try_from(config.ready_check_timeout_secs * 1000)
                    .unwrap_or(i64::MAX),
            },
        })
    }

    /// Times out the ready checks a stopped node left running (at start-up).
    pub async fn recover(self: &Arc<Self>) -> Result<(), StoreError> {
        for (party, deadline) in self.store.running_ready_checks().await? {
            self.time_out_at(party, (deadline.unix_timestamp_nanos() / 1_000_000) as i64);
        }
        Ok(())
    }

    /// In a cluster: a ready check's timer lives on the node that started the check, and dies
    /// with it. The matchmaker lease holder ends, every 2 s, any check whose deadline passed more
    /// than a second ago (ending one is idempotent: the first to do it wins, the rest find it
    /// over).
    pub fn sweep_expired_checks(self: &Arc<Self>, leadership: Arc<Leadership>) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(2));
            loop {
                every.tick().await;
                if !leadership.is_leader() {
                    continue;
                }
                let Ok(running) = this.store.running_ready_checks().await else {
                    continue;
                };
                let overdue = now_ms() - 1000;
                for (party, deadline) in running {
                    let deadline = (deadline.unix_timestamp_nanos() / 1_000_000) as i64;
                    if deadline < overdue {
                        this.time_out_at(party, deadline);
                    }
                }
            }
        });
    }

    /// The party the player is in, if any.
    pub async fn party_of(&self, player: Uuid) -> Result<Option<Uuid>, StoreError> {
        self.store.party_of(player).await
    }

    pub async fn create(&self, player: Uuid, open: bool) -> Result<PartyView, PartiesError> {
        if self.store.party_of(player).await?.is_some() {
            return Err(PartyError::AlreadyInParty.into());
        }
        let now = OffsetDateTime::now_utc();
        let record = PartyRecord {
            id: Uuid::now_v7(),
            party: Party::new(id(player), open, now_ms()),
            join_code: join_code(),
            max_size: self.limits.max_size,
            version: 1,
            latencies: Default::default(),
            ticket: None,
            created_at: now,
        };
        match self.store.create_party(&record).await {
            Ok(Ok(())) => {}
            Ok(Err(refused)) => return Err(refused.into()),
            Err(StoreError::UnknownPlayer) => return Err(PartiesError::UnknownPlayer),
            Err(err) => return Err(err.into()),
        }
        let view = self.view(&record).await?;
        self.tell(
            &[player],
            &record,
            "created",
            Some(player),
            None,
            Some(view.clone()),
        );
        Ok(view)
    }

    /// The party as `player` (a member) sees it.
    pub async fn get(&self, player: Uuid, party: Uuid) -> Result<PartyView, PartiesError> {
        let record = self
            .store
            .party(party)
            .await?
            .ok_or(PartiesError::NotFound)?;
        if !record.party.is_member(id(player)) {
            return Err(PartyError::NotMember.into());
        }
        Ok(self.view(&record).await?)
    }

    /// Applies one rule to the party under its lock; the record as stored after it.
    async fn change(
        &self,
        party: Uuid,
        mut rule: impl FnMut(&mut PartyRecord) -> Result<(), PartyError> + Send,
    ) -> Result<PartyRecord, PartiesError> {
        let now = OffsetDateTime::now_utc();
        match self.store.update_party(party, now, &mut rule).await? {
            None => Err(PartiesError::NotFound),
            Some(Err(refused)) => Err(refused.into()),
            Some(Ok(record)) => Ok(record),
        }
    }

    pub async fn invite(
        &self,
        leader: Uuid,
        party: Uuid,
        invitee: Uuid,
    ) -> Result<PartyView, PartiesError> {
        let inviter = self
            .store
            .player(leader)
            .await?
            .ok_or(PartiesError::UnknownPlayer)?;
        if self.store.player(invitee).await?.is_none() {
            return Err(PartiesError::UnknownPlayer);
        }
        let limits = self.limits;
        let mut expires_at = 0;
        let record = self
            .change(party, |r| {
                let invite = r.party.invite(id(leader), id(invitee), now_ms(), &limits)?;
                expires_at = invite.expires_at;
                Ok(())
            })
            .await?;
        self.publish(
            Audience::Player(invitee),
            ServerEvent::PartyInvite(PartyInviteEvent {
                party_id: party,
                invited_by: leader,
                invited_by_name: inviter.display_name.to_string(),
                expires_at: time_of(expires_at),
            }),
        );
        let view = self.view(&record).await?;
        self.tell(
            &record.members(),
            &record,
            "invited",
            Some(leader),
            None,
            Some(view.clone()),
        );
        Ok(view)
    }

    pub async fn join(
        &self,
        player: Uuid,
        party: Uuid,
        code: Option<&str>,
    ) -> Result<PartyView, PartiesError> {
        match self.store.party_of(player).await? {
            Some(current) if current == party => return Err(PartyError::AlreadyMember.into()),
            Some(_) => return Err(PartyError::AlreadyInParty.into()),
            None => {}
        }
        let limits = self.limits;
        let mut queued = None;
        let record = self
            .change(party, |r| {
                let matches = code.map(|c| c.eq_ignore_ascii_case(&r.join_code));
                r.party.join(id(player), matches, now_ms(), &limits)?;
                queued = r.ticket.clone();
                Ok(())
            })
            .await?;
        let why = "a new member joined";
        self.cancel_ticket(&record, queued, player, why).await;
        let view = self.view(&record).await?;
        self.tell(
            &record.members(),
            &record,
            "joined",
            Some(player),
            None,
            Some(view.clone()),
        );
        Ok(view)
    }

    pub async fn leave(&self, player: Uuid, party: Uuid) -> Result<(), PartiesError> {
        let mut left = None;
        let mut queued = None;
        let record = self
            .change(party, |r| {
                left = Some(r.party.leave(id(player))?);
                r.latencies.remove(&player);
                queued = r.ticket.clone();
                Ok(())
            })
            .await?;
        let name = self.name(player).await;
        self.cancel_ticket(&record, queued, player, &format!("{name} left the party"))
            .await;
        self.tell(&[player], &record, "left", Some(player), None, None);
        if let Some(Left::Stays { new_leader }) = left {
            let view = self.view(&record).await?;
            let reason = if new_leader.is_some() {
                "leader_changed"
            } else {
                "left"
            };
            self.tell(
                &record.members(),
                &record,
                reason,
                Some(player),
                None,
                Some(view),
            );
        }
        Ok(())
    }

    /// Takes the player out of whatever party they are in (a ban).
    pub async fn remove(&self, player: Uuid) -> Result<(), PartiesError> {
        match self.store.party_of(player).await? {
            Some(party) => match self.leave(player, party).await {
                // Left between the two reads.
                Err(PartiesError::NotFound | PartiesError::Rule(PartyError::NotMember)) => Ok(()),
                other => other,
            },
            None => Ok(()),
        }
    }

    pub async fn kick(
        &self,
        leader: Uuid,
        party: Uuid,
        target: Uuid,
    ) -> Result<PartyView, PartiesError> {
        let mut queued = None;
        let record = self
            .change(party, |r| {
                r.party.kick(id(leader), id(target))?;
                r.latencies.remove(&target);
                queued = r.ticket.clone();
                Ok(())
            })
            .await?;
        let name = self.name(target).await;
        self.cancel_ticket(&record, queued, target, &format!("{name} was kicked"))
            .await;
        self.tell(&[target], &record, "kicked", Some(leader), None, None);
        let view = self.view(&record).await?;
        self.tell(
            &record.members(),
            &record,
            "kicked",
            Some(leader),
            None,
            Some(view.clone()),
        );
        Ok(view)
    }

    /// A ready answer (the leader's first starts a check).
    pub async fn ready(
        self: &Arc<Self>,
        player: Uuid,
        party: Uuid,
        ready: bool,
        latencies: BTreeMap<String, u32>,
    ) -> Result<PartyView, PartiesError> {
        let limits = self.limits;
        let mut outcome = None;
        let mut queued = None;
        let record = self
            .change(party, |r| {
                let expired = r.party.expire_ready_check(now_ms());
                outcome = Some((
                    r.party.ready(id(player), ready, now_ms(), &limits)?,
                    expired,
                ));
                if ready {
                    r.latencies.insert(player, latencies.clone());
                }
                queued = r.ticket.clone();
                Ok(())
            })
            .await?;
        let (outcome, _) = outcome.expect("set by the change");
        let state = match outcome {
            ReadyOutcome::Started | ReadyOutcome::Answered => ReadyCheckState::Running,
            ReadyOutcome::Passed => ReadyCheckState::Passed,
            ReadyOutcome::Failed => ReadyCheckState::Failed,
        };
        if outcome == ReadyOutcome::Started
            && let Some(check) = record.party.ready_check
        {
            self.time_out_at(party, check.deadline);
        }
        if outcome == ReadyOutcome::Failed {
            let name = self.name(player).await;
            self.cancel_ticket(&record, queued, player, &format!("{name} is not ready"))
                .await;
        }
        self.announce_check(&record, state, record.party.ready_check.map(|c| c.deadline));
        let view = self.view(&record).await?;
        self.tell(
            &record.members(),
            &record,
            "ready_check",
            Some(player),
            None,
            Some(view.clone()),
        );
        Ok(view)
    }

    /// Ends the party's ready check at `deadline` if it is still running then.
    fn time_out_at(self: &Arc<Self>, party: Uuid, deadline: i64) {
        let this = self.clone();
        tokio::spawn(async move {
            let wait = u64::try_from(deadline - now_ms()).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let mut timed_out = None;
            let changed = this
                .change(party, |r| {
                    let running = r.party.ready_check.filter(|c| c.deadline == deadline);
                    let waiting: Vec<Uuid> = (r.party.members.iter())
                        .filter(|m| m.ready != Some(true))
                        .map(|m| Uuid::from_u128(m.player.0))
                        .collect();
                    if running.is_none() || !r.party.expire_ready_check(now_ms()) {
                        // Passed, failed or restarted since: nothing to time out. Refusing
                        // writes nothing.
                        return Err(PartyError::NoReadyCheck);
                    }
                    timed_out = Some(waiting);
                    Ok(())
                })
                .await;
            if let (Ok(record), Some(waiting)) = (changed, timed_out) {
                this.publish(
                    Audience::Players(record.members()),
                    ServerEvent::ReadyCheck(ReadyCheckEvent {
                        party_id: party,
                        state: ReadyCheckState::TimedOut,
                        deadline: time_of(deadline),
                        ready: Vec::new(),
                        waiting,
                    }),
                );
                if let Ok(view) = this.view(&record).await {
                    this.tell(
                        &record.members(),
                        &record,
                        "ready_check",
                        None,
                        None,
                        Some(view),
                    );
                }
            }
        });
    }

    /// A queue join: the whole party's when it names one, else the player's own (refused for a
    /// member of a party of two or more: a party is never split).
    pub async fn join_queue(
        &self,
        player: Uuid,
        request: &JoinQueueRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Joined, PartiesError> {
        if let Some(party) = request.party_id {
            return self.queue(player, party, request, idempotency_key).await;
        }
        if let Some(party) = self.store.party_of(player).await?
            && let Some(record) = self.store.party(party).await?
            && record.party.members.len() > 1
        {
            return Err(PartiesError::InParty);
        }
        Ok(self
            .matchmaking
            .join(player, request, idempotency_key)
            .await?)
    }

    /// The leader queues the whole party (every member ready): one ticket.
    pub async fn queue(
        &self,
        leader: Uuid,
        party: Uuid,
        request: &JoinQueueRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Joined, PartiesError> {
        let record = self
            .store
            .party(party)
            .await?
            .ok_or(PartiesError::NotFound)?;
        record.party.check_can_queue(id(leader))?;
        let members = record.members();
        let no_latencies = BTreeMap::new();
        let latencies: Vec<(Uuid, &BTreeMap<String, u32>)> = (members.iter())
            .map(|m| {
                let given = if *m == leader {
                    &request.latencies
                } else {
                    record.latencies.get(m).unwrap_or(&no_latencies)
                };
                (*m, given)
            })
            .collect();
        let joined = (self.matchmaking)
            .join_party(leader, &latencies, request, idempotency_key)
            .await?;
        let ticket = (request.queue.clone(), joined.ticket.ticket_id);
        // The ready check is spent on this ticket; a change since it was read means the ticket
        // no longer holds the party as it is.
        let stored = self
            .change(party, |r| {
                if r.members() != members {
                    return Err(PartyError::NotReady);
                }
                r.ticket = Some(ticket.clone());
                r.party.reset_readiness();
                Ok(())
            })
            .await;
        let record = match stored {
            Ok(record) => record,
            Err(err) => {
                let _ = self.matchmaking.leave(leader).await;
                return Err(match err {
                    PartiesError::Rule(PartyError::NotReady) => PartiesError::ChangedWhileQueueing,
                    other => other,
                });
            }
        };
        let view = self.view(&record).await?;
        self.tell(
            &record.members(),
            &record,
            "queued",
            Some(leader),
            None,
            Some(view),
        );
        Ok(joined)
    }

    /// A player's connection dropped. A party member whose party is searching: if they stay
    /// away for the whole `grace`, the party's ticket is cancelled and every member told why.
    /// Anyone else: the queue's own disconnect grace ([`Matchmaking::hold_for_reconnect`]).
    pub fn hold_for_reconnect(self: &Arc<Self>, hub: Arc<Hub>, player: Uuid, grace: Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            let record = match this.store.party_of(player).await {
                Ok(Some(party)) => this.store.party(party).await.ok().flatten(),
                _ => None,
            };
            let searching = this.matchmaking.status(player).await;
            let Some(record) = record.filter(|r| {
                r.ticket.as_ref().map(|(_, t)| *t) == searching.as_ref().map(|s| s.ticket_id)
                    && searching
                        .as_ref()
                        .is_some_and(|s| s.state == TicketState::Searching)
            }) else {
                this.matchmaking.hold_for_reconnect(hub, player, grace);
                return;
            };
            tokio::time::sleep(grace).await;
            if hub.away_for(player).await.is_none_or(|away| away < grace) {
                return;
            }
            let name = this.name(player).await;
            let queued = record.ticket.clone();
            this.cancel_ticket(&record, queued, player, &format!("{name} disconnected"))
                .await;
        });
    }

    /// Cancels the party's ticket if it is still searching, telling every member (and `who`,
    /// who may have just left) why.
    async fn cancel_ticket(
        &self,
        record: &PartyRecord,
        queued: Option<(String, Uuid)>,
        who: Uuid,
        why: &str,
    ) {
        let Some((_, ticket)) = queued else { return };
        // Any player of the ticket can take it out: `who` still is one if they just left.
        let Ok(view) = self.matchmaking.leave(who).await else {
            return;
        };
        if view.ticket_id != ticket {
            return;
        }
        let mut told = record.members();
        if !told.contains(&who) {
            told.push(who);
        }
        let party = match self.view(record).await {
            Ok(view) if !record.party.members.is_empty() => Some(view),
            _ => None,
        };
        tracing::info!(party_id = %record.id, ticket_id = %ticket, reason = why, "party ticket cancelled");
        self.tell(
            &told,
            record,
            "queue_cancelled",
            Some(who),
            Some(why.to_owned()),
            party,
        );
    }

    fn announce_check(&self, record: &PartyRecord, state: ReadyCheckState, deadline: Option<i64>) {
        let (ready, waiting): (Vec<_>, Vec<_>) =
            (record.party.members.iter()).partition(|m| m.ready == Some(true));
        let ids = |v: Vec<&versus_core::party::Member>| {
            v.into_iter().map(|m| Uuid::from_u128(m.player.0)).collect()
        };
        self.publish(
            Audience::Players(record.members()),
            ServerEvent::ReadyCheck(ReadyCheckEvent {
                party_id: record.id,
                state,
                deadline: time_of(deadline.unwrap_or_else(now_ms)),
                ready: ids(ready),
                waiting: ids(waiting),
            }),
        );
    }

    fn tell(
        &self,
        players: &[Uuid],
        record: &PartyRecord,
        reason: &str,
        by: Option<Uuid>,
        detail: Option<String>,
        party: Option<PartyView>,
    ) {
        self.publish(
            Audience::Players(players.to_vec()),
            ServerEvent::PartyUpdate(PartyUpdate {
                party_id: record.id,
                reason: reason.to_owned(),
                by,
                detail,
                party: party.map(Box::new),
            }),
        );
    }

    fn publish(&self, audience: Audience, event: ServerEvent) {
        self.bus.publish(BusEvent::to(audience, event));
    }

    async fn name(&self, player: Uuid) -> String {
        match self.store.player(player).await {
            Ok(Some(p)) => p.display_name.to_string(),
            _ => player.to_string(),
        }
    }

    async fn view(&self, record: &PartyRecord) -> Result<PartyView, StoreError> {
        let mut members = Vec::with_capacity(record.party.members.len());
        for member in &record.party.members {
            let player = Uuid::from_u128(member.player.0);
            members.push(PartyMemberView {
                player_id: player,
                display_name: self.name(player).await,
                joined_at: time_of(member.joined_at),
                ready: member.ready,
                leader: member.player == record.party.leader,
            });
        }
        let queue = match &record.ticket {
            Some((queue, ticket)) => {
                let state = self
                    .matchmaking
                    .ticket_view(queue, *ticket)
                    .await
                    .map_or(TicketState::Expired, |t: TicketView| t.state);
                Some(PartyQueueView {
                    queue: queue.clone(),
                    ticket_id: *ticket,
                    state,
                })
            }
            None => None,
        };
        let now = now_ms();
        Ok(PartyView {
            party_id: record.id,
            leader_id: record.leader(),
            members,
            max_size: u32::try_from(record.max_size).unwrap_or(u32::MAX),
            open: record.party.open,
            join_code: record.join_code.clone(),
            invites: (record.party.invites.iter())
                .filter(|i| i.expires_at > now)
                .map(|i| PartyInviteView {
                    player_id: Uuid::from_u128(i.player.0),
                    invited_by: Uuid::from_u128(i.invited_by.0),
                    expires_at: time_of(i.expires_at),
                })
                .collect(),
            ready_check: record.party.ready_check.map(|c| ReadyCheckView {
                state: if c.passed {
                    ReadyCheckState::Passed
                } else {
                    ReadyCheckState::Running
                },
                started_at: time_of(c.started_at),
                deadline: time_of(c.deadline),
            }),
            queue,
            version: record.version,
            created_at: record.created_at,
        })
    }
}
