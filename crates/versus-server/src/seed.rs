//! `versus seed`: demo data made through the real rules — accounts with plausible names and
//! regions, and matches played as sessions whose results are rated by the queue's system, so
//! ratings, histories (and the leaderboards built on them) agree with the games.
//!
//! Deterministic for a given `--seed`: every random draw is made before the store is asked, and
//! what already exists (the same player, the same session) is kept, so a second run with
//! `--force` and the same seed adds nothing.

use anyhow::Context as _;
use rand::seq::IndexedRandom as _;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use time::OffsetDateTime;
use uuid::Uuid;
use versus_core::account::{DisplayName, Password, Region, Username};
use versus_core::matchmaking::PlayerId;
use versus_core::session::{Actor, ReportedTeam, SessionState};
use versus_protocol::sessions::ResultTeam;
use versus_store::{
    NewPlayer, NewSession, PlayerPatch, Recorded, ResultToRecord, RosterRating, SessionRecord,
    Store, StoreError,
};

use crate::config::Config;
use crate::services::auth::PasswordHasher;
use crate::services::sessions::rated_result;

/// Every demo account's password: demo data is for trying things, not for keeping.
pub const DEMO_PASSWORD: &str = "versus-demo-password";

const ADJECTIVES: &[&str] = &[
    "Swift", "Brave", "Quiet", "Lucky", "Clever", "Fierce", "Calm", "Bold", "Sly", "Wild", "Iron",
    "Silver", "Golden", "Crimson", "Azure", "Shadow", "Storm", "Frost", "Ember", "Lunar",
];
const NOUNS: &[&str] = &[
    "Falcon", "Otter", "Tiger", "Raven", "Wolf", "Fox", "Badger", "Heron", "Lynx", "Viper",
    "Comet", "Golem", "Knight", "Ranger", "Sage", "Rook", "Pike", "Warden", "Nomad", "Spark",
];

#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub players: u32,
    pub matches: u32,
    pub seed: u64,
    pub force: bool,
    /// The queue matches are played in (its shape and rating system); the first configured
    /// one by default.
    pub queue: Option<String>,
    /// Draw every player's rating directly (plausible, but played by no one) and insert in
    /// bulk instead of playing matches: a million-player board in a minute or two. `matches`
    /// is ignored.
    pub fast: bool,
    /// Parties to form among the seeded players (2 to `parties.max_size` members each).
    pub parties: u32,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub players_created: u64,
    pub matches_played: u64,
    pub parties_created: u64,
    pub already_there: u64,
}

struct Demo {
    id: Uuid,
    username: Username,
    display_name: DisplayName,
    region: Region,
    /// Hidden skill: who tends to win, so ratings spread as they would in a live game.
    skill: f64,
}

fn uuid(rng: &mut ChaCha8Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

pub async fn seed(
    store: &dyn Store,
    config: &Config,
    options: &SeedOptions,
) -> anyhow::Result<SeedReport> {
    let queue = match &options.queue {
        Some(name) => config
            .queues
            .get(name)
            .with_context(|| format!("no queue {name:?} in the configuration"))?,
        None => config
            .queues
            .iter()
            .next()
            .context("no queue is configured")?,
    };
    let per_match = queue.config.teams * queue.config.team_size;
    if (options.players as usize) < per_match {
        anyhow::bail!(
            "--players must be at least {per_match} for a match of {}",
            queue.name
        );
    }
    if !options.force && store.player_count().await? > 0 {
        anyhow::bail!("the database already has players; pass --force to add demo data anyway");
    }
    let rater = queue.config.rating.build()?;
    let hasher = PasswordHasher::new(&config.auth.argon2, 1, 4)?;
    let password = Password::parse(DEMO_PASSWORD).map_err(|e| anyhow::anyhow!("{e}"))?;
    // One hash for every account: a fresh salt each would cost a second of argon2 per thousand
    // players for nothing a demo needs.
    let hash = hasher.hash(&password).await?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    if options.fast {
        return seed_fast(store, config, queue, &rater, hash, options, &mut rng).await;
    }
    let regions = &queue.config.regions;
    let mut report = SeedReport::default();
    let mut players = Vec::with_capacity(options.players as usize);
    for i in 0..options.players {
        let adjective = ADJECTIVES.choose(&mut rng).expect("not empty");
        let noun = NOUNS.choose(&mut rng).expect("not empty");
        let demo = Demo {
            id: uuid(&mut rng),
            username: Username::parse(&format!("{adjective}{noun}_{i}"))
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            display_name: DisplayName::parse(&format!("{adjective} {noun}"))
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            region: Region::parse(regions.choose(&mut rng).expect("queues have regions"))
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            skill: rng.random_range(-2.0..2.0),
        };
        let created = store
            .create_player(NewPlayer {
                id: demo.id,
                username: demo.username.clone(),
                display_name: demo.display_name.clone(),
                password_hash: Some(hash.clone()),
                created_at: OffsetDateTime::now_utc(),
            })
            .await;
        match created {
            Ok(_) => {
                let patch = PlayerPatch {
                    region: Some(Some(demo.region.clone())),
                    ..PlayerPatch::default()
                };
                store
                    .update_player(demo.id, patch, OffsetDateTime::now_utc())
                    .await?;
                report.players_created += 1;
            }
            Err(StoreError::UsernameTaken | StoreError::DuplicateId) => report.already_there += 1,
            Err(err) => return Err(err.into()),
        }
        players.push(demo);
    }
    for _ in 0..options.matches {
        let picked: Vec<&Demo> = players.choose_multiple(&mut rng, per_match).collect();
        let teams: Vec<Vec<&Demo>> = picked
            .chunks(queue.config.team_size)
            .map(<[&Demo]>::to_vec)
            .collect();
        // Stronger teams tend to place higher: skill plus logistic-ish noise.
        let mut performance: Vec<(usize, f64)> = (teams.iter().enumerate())
            .map(|(t, team)| {
                let skill: f64 = team.iter().map(|p| p.skill).sum::<f64>() / team.len() as f64;
                (t, skill + rng.random_range(-1.5..1.5))
            })
            .collect();
        performance.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut ranks = vec![0u32; teams.len()];
        for (place, (t, _)) in performance.iter().enumerate() {
            ranks[*t] = place as u32 + 1;
        }
        let id = uuid(&mut rng);
        let roster: Vec<Vec<Uuid>> = (teams.iter())
            .map(|team| team.iter().map(|p| p.id).collect())
            .collect();
        if play(store, &rater, &queue.name, id, roster, &ranks).await? {
            report.matches_played += 1;
        } else {
            report.already_there += 1;
        }
    }
    let ids: Vec<Uuid> = players.iter().map(|p| p.id).collect();
    let (created, there) = seed_parties(store, config, &ids, options.parties, &mut rng).await?;
    report.parties_created = created;
    report.already_there += there;
    Ok(report)
}

/// `count` parties of 2 to `parties.max_size` distinct players each (fewer when players run
/// out), led by their first member. Ids come from `rng`, so a second run finds them there.
async fn seed_parties(
    store: &dyn Store,
    config: &Config,
    players: &[Uuid],
    count: u32,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<(u64, u64)> {
    use versus_core::matchmaking::PlayerId;
    use versus_core::party::Party;
    let mut pool: Vec<Uuid> = players.to_vec();
    rand::seq::SliceRandom::shuffle(pool.as_mut_slice(), rng);
    let (mut created, mut there) = (0, 0);
    let now = OffsetDateTime::now_utc();
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut next = pool.into_iter();
    for _ in 0..count {
        let size = rng.random_range(2..=config.parties.max_size.max(2));
        let members: Vec<Uuid> = next.by_ref().take(size).collect();
        if members.len() < 2 {
            break;
        }
        let mut party = Party::new(PlayerId(members[0].as_u128()), false, now_ms);
        party
            .members
            .extend(members[1..].iter().map(|m| versus_core::party::Member {
                player: PlayerId(m.as_u128()),
                joined_at: now_ms,
                ready: None,
            }));
        let code: String = (0..10)
            .map(|_| (b'A' + rng.random_range(0..26u8)) as char)
            .collect();
        let record = versus_store::PartyRecord {
            id: uuid(rng),
            party,
            join_code: code,
            max_size: config.parties.max_size,
            version: 1,
            latencies: Default::default(),
            ticket: None,
            created_at: now,
        };
        match store.create_party(&record).await {
            Ok(Ok(())) => created += 1,
            Ok(Err(_)) | Err(StoreError::DuplicateId) => there += 1,
            Err(err) => return Err(err.into()),
        }
    }
    Ok((created, there))
}

/// Players inserted per store call (one transaction each).
const FAST_BATCH: usize = 5_000;

/// `--fast`: accounts with a rating drawn around the queue's initial one (a normal spread of
/// skill, deviations narrowed by play, win counts that follow skill), inserted in bulk.
async fn seed_fast(
    store: &dyn Store,
    config: &Config,
    queue: &versus_config::Queue,
    rater: &versus_core::rating::AnyRatingSystem,
    hash: String,
    options: &SeedOptions,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<SeedReport> {
    use versus_core::rating::RatingSystem as _;
    let initial = rater.initial_rating();
    let now = OffsetDateTime::now_utc();
    let placement = config.leaderboards.placement_games;
    let mut report = SeedReport::default();
    let mut batch = Vec::with_capacity(FAST_BATCH);
    for i in 0..options.players {
        let adjective = ADJECTIVES.choose(rng).expect("not empty");
        let noun = NOUNS.choose(rng).expect("not empty");
        // Box-Muller: a standard normal draw from two uniform ones.
        let (u1, u2): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let rating = versus_core::rating::PlayerRating {
            rating: initial.rating + 0.6 * initial.deviation * z,
            deviation: initial.deviation * rng.random_range(0.15..0.45),
            volatility: initial.volatility,
        };
        let games = rng.random_range(placement..placement + 400);
        let draws = games / 50;
        let win_share = 1.0 / (1.0 + (-z).exp());
        let wins = ((games - draws) as f64 * win_share).round() as u64;
        batch.push(versus_store::SeededPlayer {
            player: NewPlayer {
                id: uuid(rng),
                username: Username::parse(&format!("{adjective}{noun}_{i}"))
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
                display_name: DisplayName::parse(&format!("{adjective} {noun}"))
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
                password_hash: Some(hash.clone()),
                created_at: now,
            },
            region: Some(
                Region::parse(
                    queue
                        .config
                        .regions
                        .choose(rng)
                        .expect("queues have regions"),
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            ),
            rating: versus_store::StoredRating {
                queue: queue.name.clone(),
                rating,
                display_rating: rater.display_rating(&rating),
                games,
                wins,
                losses: games - draws - wins,
                draws,
                // Seeding refuses a store that has players, so nothing has rolled over yet.
                season: 1,
            },
            reached_at: now - time::Duration::seconds(rng.random_range(0..90 * 86_400)),
        });
        if batch.len() == FAST_BATCH || i + 1 == options.players {
            let inserted = store.seed_rated_players(&batch).await?;
            report.players_created += inserted;
            report.already_there += batch.len() as u64 - inserted;
            batch.clear();
            if (i + 1) % 100_000 == 0 {
                tracing::info!(players = i + 1, "seeding");
            }
        }
    }
    Ok(report)
}

/// One match through the session lifecycle and the result transaction; `false` when this
/// session already exists (a repeated seed).
async fn play(
    store: &dyn Store,
    rater: &versus_core::rating::AnyRatingSystem,
    queue: &str,
    id: Uuid,
    roster: Vec<Vec<Uuid>>,
    ranks: &[u32],
) -> anyhow::Result<bool> {
    let now = OffsetDateTime::now_utc();
    let created = store
        .create_session(NewSession {
            id,
            queue: queue.to_owned(),
            ranked: true,
            region: None,
            teams: roster.clone(),
            reason: "demo data".into(),
            actor: Actor::System,
            at: now,
            placed: versus_store::Placement::Allocating,
        })
        .await;
    match created {
        Ok(()) => {}
        Err(StoreError::DuplicateId) => return Ok(false),
        Err(err) => return Err(err.into()),
    }
    for (state, endpoint) in [
        (SessionState::Ready, Some("demo:0")),
        (SessionState::Active, None),
    ] {
        store
            .transition_session(id, state, Actor::System, "demo data", endpoint, now)
            .await?;
    }
    let reported: Vec<ReportedTeam> = (roster.iter().zip(ranks))
        .map(|(team, &rank)| ReportedTeam {
            players: team.iter().map(|p| PlayerId(p.as_u128())).collect(),
            rank,
        })
        .collect();
    let record = SessionRecord {
        id,
        queue: queue.to_owned(),
        ranked: true,
        region: None,
        endpoint: None,
        state: SessionState::Active,
        teams: roster,
        created_at: now,
        transitions: Vec::new(),
        result: None,
    };
    let body: Vec<ResultTeam> = (record.teams.iter().zip(ranks))
        .map(|(players, &rank)| ResultTeam {
            players: players.clone(),
            rank,
        })
        .collect();
    let rate = |roster: &[Vec<RosterRating>]| rated_result(rater, &record, &reported, roster);
    let recorded = store
        .record_result(ResultToRecord {
            session_id: id,
            result: serde_json::json!(body),
            result_hash: id.as_bytes().to_vec(),
            at: OffsetDateTime::now_utc(),
            rate: &rate,
            carry: &|stored| (stored.rating, stored.display_rating),
        })
        .await?;
    match recorded {
        Recorded::Applied(_) | Recorded::Duplicate(_) => Ok(true),
        other => anyhow::bail!("the demo result of {id} was not applied: {other:?}"),
    }
}
