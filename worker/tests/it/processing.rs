//! Deliveries become domain rows: every example payload applies, a pull request's deliveries in
//! any order give one final row, duplicates and older snapshots change nothing.

use entities::{commit, deployment, organization, pull_request, repository, review};
use jobs::{JobKind, runner::Outcome};
use sea_orm::{EntityTrait, QueryOrder};

use crate::helpers::{Env, fixture, fixture_files, fixture_json};

#[tokio::test]
async fn every_example_payload_of_a_processed_event_applies() {
    let env = Env::new().await;
    let mut applied = 0;
    for event in JobKind::PROCESSED_EVENTS {
        for path in fixture_files(&format!("webhooks/{event}")) {
            let file = path.rsplit('/').next().unwrap_or(&path);
            let id = format!("{event}-{file}");
            env.apply(&id, event, &fixture(&path)).await;
            assert_eq!(env.status(&id).await, "processed", "{id}");
            applied += 1;
        }
    }
    assert!(applied >= 50, "only {applied} examples");

    let pr = pull_request::Entity::find_by_id(279147437)
        .one(&env.db)
        .await
        .expect("query")
        .expect("the example pull request");
    assert_eq!(pr.number, 2);
    assert_eq!(
        pr.state, "closed",
        "the newest example snapshot is the close"
    );
    assert_eq!(pr.base_ref, "master");
    assert!(
        pr.first_review_at.is_none(),
        "the examples' only reviewer is the author"
    );
    let deployment = deployment::Entity::find_by_id(145988746)
        .one(&env.db)
        .await
        .expect("query")
        .expect("the example deployment");
    // Several examples share this id; whichever is newest, its statuses set the latest state.
    assert!(deployment.latest_state.is_some());
    let repo = repository::Entity::find_by_id(186853002)
        .one(&env.db)
        .await
        .expect("query")
        .expect("the example repository");
    assert_eq!(repo.default_branch.as_deref(), Some("master"));
    let orgs = organization::Entity::find()
        .all(&env.db)
        .await
        .expect("orgs");
    assert!(
        orgs.iter()
            .any(|o| o.github_login.as_deref() == Some("Codertocat"))
    );
    let bots = env
        .number(
            "SELECT count(*) AS n FROM github_users WHERE is_bot",
            vec![],
        )
        .await;
    let people = env
        .number(
            "SELECT count(*) AS n FROM github_users WHERE NOT is_bot",
            vec![],
        )
        .await;
    assert!(people > 0 && bots >= 0);
    let dead = env.count_status("dead").await;
    assert_eq!(dead, 0);
    env.teardown().await;
}

const LIFECYCLE: [(&str, &str); 5] = [
    ("pull_request", "lifecycle/01-opened.json"),
    ("pull_request", "lifecycle/02-review_requested.json"),
    ("pull_request_review", "lifecycle/03-review_submitted.json"),
    ("pull_request", "lifecycle/04-synchronize.json"),
    ("pull_request", "lifecycle/05-closed_merged.json"),
];

/// The lifecycle fixtures for a pull request of its own (ids shifted by `n`).
fn lifecycle_for(n: i64) -> Vec<(&'static str, String)> {
    LIFECYCLE
        .iter()
        .map(|(event, file)| {
            let mut json = fixture_json(file);
            json["pull_request"]["id"] = (1_000_000 + n).into();
            if json.get("review").is_some() {
                json["review"]["id"] = (2_000_000 + n).into();
            } else {
                json["pull_request"]["number"] = (1_000 + n).into();
            }
            (*event, json.to_string())
        })
        .collect()
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for rest in permutations(n - 1) {
        for i in 0..=rest.len() {
            let mut p = rest.clone();
            p.insert(i, n - 1);
            out.push(p);
        }
    }
    out
}

/// The columns that describe the pull request (not its key, number or our own clock).
fn essence(pr: &pull_request::Model) -> String {
    let mut pr = pr.clone();
    pr.github_id = 0;
    pr.number = 0;
    pr.synced_at = chrono::DateTime::UNIX_EPOCH.fixed_offset();
    format!("{pr:?}")
}

#[tokio::test]
async fn a_pull_request_life_cycle_applied_in_every_order_gives_one_final_row() {
    let env = Env::new().await;
    let orders = permutations(LIFECYCLE.len());
    assert_eq!(orders.len(), 120);
    for (n, order) in orders.iter().enumerate() {
        let deliveries = lifecycle_for(n as i64);
        for &i in order {
            let (event, payload) = &deliveries[i];
            env.apply(&format!("life-{n}-{i}"), event, payload).await;
        }
    }
    let rows = pull_request::Entity::find()
        .order_by_asc(pull_request::Column::GithubId)
        .all(&env.db)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 120);

    let first = &rows[0];
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).expect("time");
    assert_eq!(first.state, "merged");
    assert_eq!(first.head_sha, "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678");
    assert_eq!(first.commits_count, Some(2));
    assert_eq!(first.additions, Some(3));
    assert_eq!(
        first.merge_commit_sha.as_deref(),
        Some("f00dfeedf00dfeedf00dfeedf00dfeedf00dfeed")
    );
    assert_eq!(first.merged_by_id, Some(583231));
    assert_eq!(first.author_id, Some(21031067));
    assert_eq!(first.created_at, at("2019-05-15T15:20:33Z"));
    assert_eq!(first.first_review_at, Some(at("2019-05-15T15:20:45Z")));
    assert_eq!(first.first_approved_at, Some(at("2019-05-15T15:20:45Z")));
    assert_eq!(first.merged_at, Some(at("2019-05-15T15:21:00Z")));
    assert_eq!(first.updated_at, at("2019-05-15T15:21:00Z"));
    assert!(!first.draft);

    let expected = essence(first);
    for (row, order) in rows.iter().zip(&orders) {
        assert_eq!(essence(row), expected, "order {order:?}");
    }
    env.teardown().await;
}

#[tokio::test]
async fn a_life_cycle_run_as_one_batch_gives_the_same_row_as_one_job_at_a_time() {
    let env = Env::new().await;
    let orders = permutations(LIFECYCLE.len());
    // One at a time, in order, for pull request 0; as one batch in every order for the others.
    for (i, (event, payload)) in lifecycle_for(0).iter().enumerate() {
        env.apply(&format!("single-{i}"), event, payload).await;
    }
    for (n, order) in orders.iter().enumerate().map(|(n, o)| (n as i64 + 1, o)) {
        let deliveries = lifecycle_for(n);
        let mut batch = Vec::new();
        for &i in order {
            let (event, payload) = &deliveries[i];
            let id = format!("batch-{n}-{i}");
            env.insert(&id, event, payload, "queued").await;
            batch.push((id, *event));
        }
        let refs: Vec<(&str, &str)> = batch.iter().map(|(id, e)| (id.as_str(), *e)).collect();
        let outcomes = env.run_batch(&refs).await;
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Outcome::Processed { .. })),
            "{outcomes:?}"
        );
    }
    let rows = pull_request::Entity::find()
        .order_by_asc(pull_request::Column::GithubId)
        .all(&env.db)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 121);
    let expected = essence(&rows[0]);
    assert!(expected.contains("merged"), "{expected}");
    for (row, order) in rows[1..].iter().zip(&orders) {
        assert_eq!(essence(row), expected, "batch order {order:?}");
    }
    env.teardown().await;
}

#[tokio::test]
async fn duplicates_and_older_snapshots_change_nothing() {
    let env = Env::new().await;
    let merged = fixture("lifecycle/05-closed_merged.json");
    env.apply("merged", "pull_request", &merged).await;
    let before = pull_request::Entity::find_by_id(279147437)
        .one(&env.db)
        .await
        .expect("query")
        .expect("row");

    // The same delivery's job again: the delivery is processed, so nothing runs.
    assert_eq!(
        env.run_job("merged", "pull_request").await,
        Outcome::Skipped
    );
    assert_eq!(env.delivery("merged").await.attempts, 1);
    // The same content under another delivery id, and an older snapshot arriving late.
    env.apply("merged-again", "pull_request", &merged).await;
    env.apply_fixture("opened-late", "pull_request", "lifecycle/01-opened.json")
        .await;
    let after = pull_request::Entity::find_by_id(279147437)
        .one(&env.db)
        .await
        .expect("query")
        .expect("row");
    assert_eq!(after, before, "not even synced_at moved");
    env.teardown().await;
}

#[tokio::test]
async fn squash_merges_and_reverts_are_recorded_with_their_commits() {
    let env = Env::new().await;
    env.apply_fixture("squash", "pull_request", "lifecycle/10-squash_merged.json")
        .await;
    env.apply_fixture("squash-push", "push", "lifecycle/11-push_squash.json")
        .await;
    env.apply_fixture("revert", "pull_request", "lifecycle/12-reverted.json")
        .await;

    let squash = pull_request::Entity::find_by_id(279147500)
        .one(&env.db)
        .await
        .expect("query")
        .expect("squash PR");
    assert_eq!(squash.state, "merged");
    assert_eq!(squash.commits_count, Some(3));
    let sha = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
    assert_eq!(squash.merge_commit_sha.as_deref(), Some(sha));
    let commit = commit::Entity::find_by_id((186853002, sha.to_owned()))
        .one(&env.db)
        .await
        .expect("query")
        .expect("the squash commit, pushed to master");
    assert!(commit.on_default_branch);
    assert_eq!(commit.refs, vec!["master".to_owned()]);
    assert_eq!(commit.message_headline, "Add a feature (squashed) (#3)");
    assert_eq!(commit.author_login.as_deref(), Some("Codertocat"));
    assert_eq!(commit.push_position, Some(0));
    assert!(commit.default_branch_pushed_at.is_some());

    let revert = pull_request::Entity::find_by_id(279147600)
        .one(&env.db)
        .await
        .expect("query")
        .expect("revert PR");
    assert_eq!(revert.state, "merged");
    assert_eq!(revert.head_ref, "revert-2-changes");
    assert!(revert.title.starts_with("Revert "));
    env.teardown().await;
}

#[tokio::test]
async fn a_review_before_its_pull_request_still_sets_the_first_review_and_bots_do_not_count() {
    let env = Env::new().await;
    // A bot reviews first, then a person; the pull request arrives last.
    let mut bot = fixture_json("lifecycle/03-review_submitted.json");
    bot["review"]["id"] = 1.into();
    bot["review"]["user"] = serde_json::json!({"login": "lint[bot]", "id": 99, "type": "Bot"});
    bot["review"]["submitted_at"] = "2019-05-15T15:20:35Z".into();
    bot["review"]["state"] = "commented".into();
    env.apply("bot-review", "pull_request_review", &bot.to_string())
        .await;
    env.apply_fixture(
        "review",
        "pull_request_review",
        "lifecycle/03-review_submitted.json",
    )
    .await;
    env.apply_fixture("opened", "pull_request", "lifecycle/01-opened.json")
        .await;

    let pr = pull_request::Entity::find_by_id(279147437)
        .one(&env.db)
        .await
        .expect("query")
        .expect("row");
    let at = chrono::DateTime::parse_from_rfc3339("2019-05-15T15:20:45Z").expect("time");
    assert_eq!(pr.first_review_at, Some(at));
    let reviews = review::Entity::find().all(&env.db).await.expect("reviews");
    assert_eq!(reviews.len(), 2);
    env.teardown().await;
}

#[tokio::test]
async fn first_x_times_are_computed_with_the_snapshot_that_is_kept() {
    let env = Env::new().await;
    // Before the pull request arrives: a commit on its head branch, authored after the time it
    // will be merged, and a review by its own author (neither may count once it is merged).
    let mut late_push = fixture_json("lifecycle/11-push_squash.json");
    late_push["ref"] = "refs/heads/changes".into();
    late_push["commits"][0]["id"] = "6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b".into();
    late_push["commits"][0]["timestamp"] = "2019-05-15T15:30:00Z".into();
    late_push["head_commit"] = late_push["commits"][0].clone();
    env.apply("late-push", "push", &late_push.to_string()).await;
    let mut own_review = fixture_json("lifecycle/03-review_submitted.json");
    own_review["review"]["id"] = 7.into();
    own_review["review"]["user"] = own_review["pull_request"]["user"].clone();
    own_review["review"]["submitted_at"] = "2019-05-15T15:20:40Z".into();
    env.apply("own-review", "pull_request_review", &own_review.to_string())
        .await;
    let times = || async {
        let pr = pull_request::Entity::find_by_id(279147437)
            .one(&env.db)
            .await
            .expect("query")
            .expect("row");
        (pr.first_commit_at, pr.first_review_at)
    };
    let at = |s: &str| Some(chrono::DateTime::parse_from_rfc3339(s).expect("time"));

    // Act 1: the pull request is inserted, open (no end: every commit of its branch counts).
    env.apply_fixture("opened", "pull_request", "lifecycle/01-opened.json")
        .await;
    assert_eq!(times().await, (at("2019-05-15T15:30:00Z"), None));

    // Act 2: a newer snapshot, merged at 15:21, bounds the commits; another reviewer counts.
    env.apply_fixture(
        "review",
        "pull_request_review",
        "lifecycle/03-review_submitted.json",
    )
    .await;
    env.apply_fixture("merged", "pull_request", "lifecycle/05-closed_merged.json")
        .await;
    assert_eq!(times().await, (None, at("2019-05-15T15:20:45Z")));

    // Act 3: an older snapshot that still adds something (an earlier creation time) keeps the
    // merged row's bound.
    let mut older = fixture_json("lifecycle/01-opened.json");
    older["pull_request"]["created_at"] = "2019-05-15T15:00:00Z".into();
    env.apply("older", "pull_request", &older.to_string()).await;
    assert_eq!(times().await, (None, at("2019-05-15T15:20:45Z")));
    env.teardown().await;
}

#[tokio::test]
async fn installation_events_create_suspend_and_remove_organizations_in_any_order() {
    let env = Env::new().await;
    let created = fixture_json("webhooks/installation/01-created.json");
    let mut deleted = created.clone();
    deleted["action"] = "deleted".into();
    deleted["installation"]["updated_at"] = 1_557_940_000.into();
    let mut removed_repo = fixture_json("webhooks/installation_repositories/00-added.json");
    removed_repo["action"] = "removed".into();
    removed_repo["repositories_removed"] = removed_repo["repositories_added"].clone();
    removed_repo["repositories_added"] = serde_json::json!([]);
    removed_repo["installation"]["updated_at"] = 1_557_935_000.into();
    let added_repo = fixture_json("webhooks/installation_repositories/00-added.json");

    // Deletion and removal arrive before creation and addition.
    env.apply("deleted", "installation", &deleted.to_string())
        .await;
    env.apply(
        "removed",
        "installation_repositories",
        &removed_repo.to_string(),
    )
    .await;
    env.apply("created", "installation", &created.to_string())
        .await;
    env.apply(
        "added",
        "installation_repositories",
        &added_repo.to_string(),
    )
    .await;

    let orgs = organization::Entity::find()
        .all(&env.db)
        .await
        .expect("orgs");
    assert_eq!(orgs.len(), 1);
    assert_eq!(
        orgs[0].status, "removed",
        "the deletion is GitHub's newest event"
    );
    assert_eq!(orgs[0].installation_id, Some(957387));
    let space = repository::Entity::find_by_id(186853007)
        .one(&env.db)
        .await
        .expect("query")
        .expect("repository Space");
    assert!(
        space.removed_at >= space.installed_at,
        "removed after it was added"
    );
    env.teardown().await;
}

/// The projection the API stores is derived data: the worker reads it only while it was made of
/// the row's payload with the worker's own trees; otherwise PostgreSQL projects the payload.
#[tokio::test]
async fn a_stored_projection_is_read_only_while_it_matches_the_payload_and_the_trees() {
    use sea_orm::ConnectionTrait;

    let env = Env::new().await;
    let pr = |n: i64| {
        let mut json = fixture_json("lifecycle/01-opened.json");
        json["pull_request"]["id"] = (3_000_000 + n).into();
        json["pull_request"]["number"] = (3_000 + n).into();
        json.to_string()
    };
    let title = async |n: i64| {
        pull_request::Entity::find_by_id(3_000_000 + n)
            .one(&env.db)
            .await
            .expect("query")
            .expect("pull request row")
            .title
    };
    let sql = async |sql: &str| {
        env.db.execute_unprepared(sql).await.expect("update");
    };
    let original = fixture_json("lifecycle/01-opened.json")["pull_request"]["title"]
        .as_str()
        .expect("title")
        .to_owned();

    // Arrange: stored as the API stores it, the projection is there.
    for n in 1..=3 {
        env.insert(&format!("p{n}"), "pull_request", &pr(n), "queued")
            .await;
        let row = env.delivery(&format!("p{n}")).await;
        assert!(row.projection.is_some(), "p{n} has a stored projection");
        assert_eq!(
            row.projection_version,
            Some(jobs::github::projection::version())
        );
    }
    // p1: an operator fixes the payload in place; the trigger clears the projection.
    sql("UPDATE webhook_deliveries SET payload = jsonb_set(payload, '{pull_request,title}', '\"Fixed\"') \
         WHERE delivery_id = 'p1'")
        .await;
    let row = env.delivery("p1").await;
    assert_eq!((row.projection, row.projection_version), (None, None));
    // p2: a projection made by other trees (another build) is not read.
    sql("UPDATE webhook_deliveries SET projection = '{}', projection_version = projection_version + 1 \
         WHERE delivery_id = 'p2'")
        .await;
    // p3: a projection of this build is what the worker reads (the payload is not).
    sql("UPDATE webhook_deliveries \
         SET projection = jsonb_set(projection::jsonb, '{pull_request,title}', '\"From the projection\"')::text \
         WHERE delivery_id = 'p3'")
        .await;

    // Act
    let outcomes = env
        .run_batch(&[
            ("p1", "pull_request"),
            ("p2", "pull_request"),
            ("p3", "pull_request"),
        ])
        .await;

    // Assert
    for outcome in outcomes {
        assert!(matches!(outcome, Outcome::Processed { .. }), "{outcome:?}");
    }
    assert_eq!(title(1).await, "Fixed");
    assert_eq!(title(2).await, original);
    // (The attempt and status updates on the way did not clear it.)
    assert_eq!(title(3).await, "From the projection");
    env.teardown().await;
}

/// The worker loads only the fields the parsers read (`github::projection`); every example
/// payload must parse to the same records from that projection as from the whole payload.
#[tokio::test]
async fn the_projected_payload_parses_to_the_same_records_as_the_whole_one() {
    use jobs::process::{DeliveryInput, parse};
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    let env = Env::new().await;
    let mut cases: Vec<(String, String)> = Vec::new();
    for event in JobKind::PROCESSED_EVENTS {
        for path in fixture_files(&format!("webhooks/{event}")) {
            cases.push((event.to_owned(), path));
        }
    }
    for path in fixture_files("lifecycle") {
        let event = match path.as_str() {
            p if p.contains("review_submitted") => "pull_request_review",
            p if p.contains("push") => "push",
            _ => "pull_request",
        };
        cases.push((event.to_owned(), path));
    }
    // Malformed shapes must still be refused after the projection.
    let malformed = [
        (
            "pull_request",
            r#"{"action":"opened","pull_request":"not an object","repository":{"id":1,"name":"a","full_name":"o/a","owner":{"id":2,"login":"o"}}}"#,
        ),
        (
            "pull_request",
            r#"{"action":"opened","pull_request":{"id":1,"number":null},"repository":{"id":1,"name":"a","full_name":"o/a","owner":{"id":2,"login":"o"}}}"#,
        ),
        (
            "deployment",
            r#"{"deployment":{"id":"x"},"repository":{"id":1,"name":"a","full_name":"o/a","owner":{"id":2,"login":"o"}}}"#,
        ),
    ];

    let sql = format!(
        "SELECT {} AS payload FROM (SELECT $1::text AS event, $2::jsonb AS payload) AS d, {}",
        jobs::github::projection::payload_text_sql(),
        jobs::github::projection::DETOASTED_PAYLOAD,
    );
    let project = async |event: &str, payload: &str| -> String {
        let row = env
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql.as_str(),
                [event.into(), payload.into()],
            ))
            .await
            .expect("projection")
            .expect("a row");
        row.try_get("", "payload").expect("text")
    };
    let received_at = chrono::Utc::now();
    let parsed = |event: &str, payload: &str| {
        format!(
            "{:?}",
            parse(DeliveryInput {
                event,
                payload,
                received_at
            })
            .map_err(|e| e
                .to_string()
                .split(" at line")
                .next()
                .unwrap_or("")
                .to_owned())
        )
    };

    let (mut full_bytes, mut projected_bytes) = (0, 0);
    for (event, path) in &cases {
        let whole = fixture(path);
        let projected = project(event, &whole).await;
        let (a, b) = (parsed(event, &whole), parsed(event, &projected));
        assert!(a.starts_with("Ok("), "{path} applies: {a}");
        assert_eq!(a, b, "{path}");
        // The API's projection (stored at ingest) is the same document as PostgreSQL's;
        // installation events have no tree and are read whole.
        match jobs::github::projection::project(event, &whole) {
            Some(stored) => assert_eq!(
                serde_json::from_str::<serde_json::Value>(&stored).expect("JSON"),
                serde_json::from_str::<serde_json::Value>(&projected).expect("JSON"),
                "{path}"
            ),
            None => assert!(event.starts_with("installation"), "{path}: no projection"),
        }
        full_bytes += whole.len();
        projected_bytes += projected.len();
    }
    assert!(cases.len() >= 60, "only {} fixtures", cases.len());
    assert!(
        projected_bytes * 4 < full_bytes,
        "the projection reads {projected_bytes} of {full_bytes} bytes"
    );
    for (event, payload) in malformed {
        let projected = project(event, payload).await;
        let stored = jobs::github::projection::project(event, payload).expect("projection");
        let (a, b, c) = (
            parsed(event, payload),
            parsed(event, &projected),
            parsed(event, &stored),
        );
        assert!(
            a.starts_with("Err(") && b.starts_with("Err(") && c.starts_with("Err("),
            "{payload}: {a} / {b} / {c}"
        );
    }
    env.teardown().await;
}
