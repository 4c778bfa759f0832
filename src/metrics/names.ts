/**
 * Every metric branchline exports, named once (documented in
 * docs/operations.md). Components get the small interfaces below, not
 * prom-client; every series a dashboard shows is initialised to zero so it
 * reads 0, not "no data".
 */
export const METRIC = {
  settlementChecks: 'branchline_settlement_checks_total',
  settlementCheckSeconds: 'branchline_settlement_check_duration_seconds',
  changesCaptured: 'branchline_changes_captured_total',
  changesApplied: 'branchline_changes_applied_total',
  transactionsApplied: 'branchline_transactions_applied_total',
  batchesApplied: 'branchline_batches_applied_total',
  changesParked: 'branchline_changes_parked_total',
  parkedChanges: 'branchline_parked_changes',
  sessionErrors: 'branchline_pipeline_errors_total',
  batchRows: 'branchline_batch_changes',
  applySeconds: 'branchline_apply_duration_seconds',
  lagSeconds: 'branchline_lag_seconds',
  oldestUnappliedSeconds: 'branchline_oldest_unapplied_age_seconds',
  lastApplyTime: 'branchline_last_apply_timestamp_seconds',
  pipelineState: 'branchline_pipeline_state',
  slotLagBytes: 'branchline_slot_lag_bytes',
  slotRetainedBytes: 'branchline_slot_wal_retained_bytes',
  storeLeaseHeld: 'branchline_store_lease_held',
} as const;

export type MetricName = (typeof METRIC)[keyof typeof METRIC];
