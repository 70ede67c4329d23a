"""Simulate a subscription business with known churn drivers: the pipeline's default dataset.

Two worlds (``simulate.world``) share the business, the calendar, the texts and the table
contract:

* ``realistic`` (the default, ``latent``): per-customer latent states (satisfaction, need,
  price sensitivity, financial stress, an unobserved frailty) evolve month by month and drive
  the hazard (lags, an interaction, saturation, a competitor entering one country from a known
  date); the tables are noisy, biased traces of them, so no feature reads a driver off directly.
  ``truth.parquet`` holds each latent driver's contribution; its Parquet metadata and
  ``simulation.json`` name the world and each driver's proxy feature group.
* ``simple`` (fast tests): the hazard is a sum of 11 planted drivers, each computed from the raw
  tables before the month and mapping 1:1 onto a feature. The rest of this page describes it.

The simulator writes the five input-contract tables (customers, churn_events, events,
responses, tickets) plus `truth.parquet` (the exact churn probability of every active
customer at every month start) and `simulation.json` (params, row counts, planted drivers).
The stage `simulate` (`pipeline/simulate.py`, `churn simulate`) runs it.

Modules
-------
* ``world``: the business (plans, fees, segments, countries, channels, event types,
  touchpoints, tickets), the hazard constants and the planted drivers (``DRIVERS``).
* ``texts``: warning words, ticket and survey-comment templates per language.
* ``calendar``: time units, the month calendar and the truth's horizon probability.
* ``month``: ``ChunkSimulator``, one chunk of customers simulated month by month (simple).
* ``latent``: ``LatentChunkSimulator``, the realistic world's chunk (its docstring gives the
  latent dynamics and the hazard).
* ``tables``: the output schemas and ``simulate``, which writes the tables and
  ``simulation.json`` atomically.

Mechanics (simple world)
------------------------
Time runs in calendar months. A warm-up of ``calendar.WARMUP_MONTHS`` months before
``start_date`` generates behaviour but no churn, so that every 90-day window at ``start_date``
is observable.
At each month start ``m`` (from ``start_date`` on), for every customer active at ``m``
(signed up before ``m``, not churned), the driver values ``x_j(m)`` are computed from the
data already written, strictly before ``m`` (windows are ``[m - w days, m)``):

=========================  ===============  ====================================================
driver (column contrib_*)  churn type       x_j(m), observable in the raw tables
=========================  ===============  ====================================================
after_sales_csat_low       dissatisfaction  1 if an after-sales CSAT <= 5 in the last 90 days
csat_low_other             dissatisfaction  1 if a CSAT <= 5 at another touchpoint, last 90 days
ticket_escalated           dissatisfaction  1 if a ticket opened in the last 90 days is escalated
ticket_open                dissatisfaction  1 if a ticket has opened_at < m and
                                            (closed_at is null or closed_at >= m)
complaint_text             dissatisfaction  1 if a survey comment or ticket text of the last 90
                                            days holds a warning word (``texts.WARNING_WORDS``)
low_engagement             dissatisfaction  max(0, 6 - login days in last 30 days) / 6,
                                            only when tenure >= 30 days
price_increase_sensitive   economic         1{price_change in last 90 days} x sensitivity(
                                            segment, plan at signup) (``world.PRICE_SENSITIVITY``)
discount_request           economic         1 if a discount_request in the last 30 days
payment_failure            economic         1 if a payment_failure in the last 30 days
new_customer               situational      1 if tenure < 90 days
basic_plan                 situational      1 if the plan at signup is basic
=========================  ===============  ====================================================

Cause-specific monthly hazards are additive in the drivers
(``a_j`` = ``world.Driver.coefficient``)::

    h_dis = sum_{j in dissatisfaction} a_j x_j(m)
    h_eco = sum_{j in economic}        a_j x_j(m)
    h_sit = b0 + sum_{j in situational} a_j x_j(m)          (b0 = world.BASELINE_HAZARD)
    H     = h_dis + h_eco + h_sit
    p_m   = 1 - (1 - q) * exp(-H)                           (q = world.LIFE_EVENT_PROBABILITY)

``q`` is the monthly probability of a random life event that ends the subscription (purely
random, situational). The customer churns during month ``m`` with probability ``p_m``, at a
time drawn uniformly in ``(m, m_next)``. The churn type is situational with probability
``q / p_m`` (the life event) and otherwise drawn in proportion to ``h_dis : h_eco : h_sit``.
Contributions are in hazard units: ``contrib_<driver> = a_j x_j(m)``, ``contrib_baseline = b0``,
so the contributions sum to ``H`` exactly.

No latent variable enters the hazard. Latent state drives what is observed: dissatisfaction
``D`` (AR(1) with random incidents, fed by escalated and unresolved tickets) lowers CSAT / NPS,
raises tickets, escalations, complaint texts and lowers logins; financial stress ``S`` raises
payment failures, discount requests and downgrades. After a dissatisfied customer decides to
leave, logins decay towards the churn date.

Truth
-----
``true_probability`` = P(churn time in ``(m, m + horizon_days]``) given the state at ``m``.
Within month ``m`` it is exact: ``p_m * min(horizon, L_m) / L_m`` (``L_m`` = days in the
month). Where the horizon runs past the month, the state is assumed frozen at ``m``: each
later month has the same ``p_m``, so ``P = sum_k S_k p_m min(rest_k, L_k) / L_k`` with
``S_k = (1 - p_m)^k``. Cause-specific probabilities split ``true_probability`` in the ratio
``q + (1-q)(1-e^-H) h_sit/H : (1-q)(1-e^-H) h_dis/H : (1-q)(1-e^-H) h_eco/H`` (their sum is p_m).

Data details worth knowing
--------------------------
* Survey responses whose reply would fall after the month end (or the churn time) are
  dropped (non-response); a support CSAT survey is sent only when its ticket closes in the
  month it was opened. Every event of month ``m`` has ``ts < m_next`` except ``closed_at``.
* ``closed_at`` is null for tickets never closed, closed after the churn time, or after
  ``end_date``; ``satisfaction`` is null then too.
* ``customers.plan`` / ``monthly_fee`` are at signup; changes are ``plan_change`` /
  ``price_change`` events (a new fee applies from the next renewal). Every price change is an
  increase. ``survey_sent`` carries its touchpoint in ``feature``.
* Noise columns (marketing_opt_in, device_os, birth_month, referral_code) affect nothing.
"""
