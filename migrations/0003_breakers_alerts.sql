-- streamguard: circuit breakers shared by every replica, the alert outbox, operator actions
-- and conflicts reported by processors themselves (issue 5).

-- One breaker per scope (a processor name, or a table when STREAMGUARD_BREAKER_SCOPE=table).
-- Every transition is one compare-and-swap update on `version`, so N replicas agree.
-- The half-open permit is (probe_job_id, probe_attempt): it counts only while that job
-- attempt still holds its lease in `jobs`, so a dead probe never keeps the breaker stuck.
create table breakers (
    scope              text primary key,
    state              text not null default 'closed',
    version            bigint not null default 0,
    opened_at          timestamptz,
    reopens_at         timestamptz,
    reopens            integer not null default 0,
    counting_since     timestamptz,
    probe_job_id       bigint,
    probe_attempt      integer,
    trips              integer not null default 0,
    last_reason        text,
    last_actor         text,
    last_transition_at timestamptz,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now(),
    constraint breakers_state_check check (state in
        ('closed', 'open', 'half_open', 'forced_open', 'disabled')),
    constraint breakers_probe_pair check ((probe_job_id is null) = (probe_attempt is null))
);

-- The outcomes a breaker counts (landed or conflict; transient and permanent errors are
-- not outcomes). The window is the last N of them no older than T.
create table breaker_outcomes (
    outcome_id  bigint generated always as identity primary key,
    scope       text not null,
    conflict    boolean not null,
    source      text not null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    constraint breaker_outcomes_source_check check (source in ('scheduler', 'processor'))
);
create index breaker_outcomes_scope_idx on breaker_outcomes (scope, outcome_id desc);

-- Every breaker transition: who (`actor`: `scheduler` or the operator), when, and why.
create table breaker_transitions (
    transition_id  bigint generated always as identity primary key,
    scope          text not null constraint breaker_transitions_scope_fk references breakers (scope),
    from_state     text not null,
    to_state       text not null,
    reason         text not null,
    actor          text not null,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now()
);
create index breaker_transitions_scope_idx on breaker_transitions (scope, transition_id desc);

-- A job may be attempted once while its breaker is open (operator retry with
-- `ignore_breaker: true`).
alter table jobs add column bypass_breaker boolean not null default false;

-- Operators may cancel a unit: it is never attempted again.
alter table write_units drop constraint write_units_state_check;
alter table write_units add constraint write_units_state_check check (state in
    ('pending', 'loaded', 'deferred', 'failed', 'superseded', 'unresolved', 'cancelled'));

-- Conflicts a processor reported itself (`unit_id` null unless it handed its rows over).
alter table conflicts add column source text not null default 'scheduler';
alter table conflicts add constraint conflicts_source_check check (source in ('scheduler', 'processor'));

-- Every operator action on a conflict or a unit (also appended to the conflict's
-- `details.operator_actions`, so the conflict log shows it).
create table operator_actions (
    action_id    bigint generated always as identity primary key,
    action       text not null,
    conflict_id  uuid constraint operator_actions_conflict_fk references conflicts (conflict_id),
    unit_id      uuid constraint operator_actions_unit_fk references write_units (unit_id),
    actor        text not null,
    reason       text not null,
    details      jsonb,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now(),
    constraint operator_actions_action_check check (action in
        ('retry', 'resolve', 'force', 'cancel'))
);

-- The alert outbox: one row per event, written in the event's own transaction.
create table alerts (
    alert_id    bigint generated always as identity primary key,
    kind        text not null,
    scope       text not null,
    summary     text not null,
    payload     jsonb not null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    constraint alerts_kind_check check (kind in
        ('breaker_opened', 'breaker_closed', 'conflict_timeout', 'unit_failed', 'daily_digest'))
);

-- One delivery per alert and channel, so that a failing channel never blocks another.
-- state: pending (due at next_attempt_at), sending (claimed until lease_expires_at),
-- sent. A claim is one committed statement with `for update skip locked`; the send
-- happens outside any transaction, and marking it sent is fenced on `claim_token`.
create table alert_deliveries (
    delivery_id      bigint generated always as identity primary key,
    alert_id         bigint not null constraint alert_deliveries_alert_fk references alerts (alert_id),
    channel          text not null,
    scope            text not null,
    state            text not null default 'pending',
    attempts         integer not null default 0,
    next_attempt_at  timestamptz not null default now(),
    lease_expires_at timestamptz,
    claim_token      uuid,
    last_error       text,
    sent_at          timestamptz,
    message_id       uuid,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    constraint alert_deliveries_state_check check (state in ('pending', 'sending', 'sent')),
    constraint alert_deliveries_alert_channel_unique unique (alert_id, channel)
);
create index alert_deliveries_due_idx on alert_deliveries (next_attempt_at) where state <> 'sent';
create index alert_deliveries_sent_idx on alert_deliveries (channel, scope, sent_at) where state = 'sent';
