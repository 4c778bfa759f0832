/**
 * The migrations in `migrations/`, by name, in order: what `install` applies
 * and what an agent checks for before it writes (so an agent newer than the
 * schema says "run install" instead of failing on a missing column).
 */
export const MIGRATION_NAMES = ['20261123000001_pipeline_state', '20261123000002_mapping_policies', '20261123000003_associations_parking', '20261123000004_down_channel', '20261123000005_central_config', '20261201000006_scheduled_labels', '20261201000007_settlement_checks', '20261202000008_report_runs', '20261202000009_reconcile_runs', '20261202000010_store_leases', '20261204000011_pipeline_pauses'] as const;
