/**
 * Tenant Provisioner's control plane as a CDK library: the stack, or its constructs one by one for a team that
 * composes them into its own app. Every construct takes a `readonly` props interface with documented defaults.
 */
export {
  type JwtConfig,
  STAGES,
  type StageConfig,
  type StageName,
  type StageOverrides,
  stageConfig,
} from './config.ts';
export { Api, type ApiProps, type ApiRoute } from './constructs/api.ts';
export {
  CONTROL_PLANE_DATABASE,
  Database,
  type DatabaseProps,
  PROVISIONER_ROLE,
  schemaHash,
} from './constructs/database.ts';
export { Events, type EventsProps } from './constructs/events.ts';
export {
  BASELINE_ACTIONS,
  BUNDLED_SCHEMA_DIR,
  ControlPlaneFunction,
  type ControlPlaneFunctionProps,
  RegistryFunctions,
  type RegistryFunctionsProps,
} from './constructs/function.ts';
export {
  type FailureEventsProps,
  Monitoring,
  type MonitoringProps,
  type ProvisioningMonitoringProps,
  type ScheduledFunctionsMonitoringProps,
  type StateMachinesMonitoringProps,
} from './constructs/monitoring.ts';
export {
  Provisioning,
  type ProvisioningProps,
  type StateMachineFile,
  stateMachineFiles,
} from './constructs/provisioning.ts';
export { type ScheduledFunction, Schedules, type SchedulesProps } from './constructs/schedules.ts';
export { Storage, type StorageProps } from './constructs/storage.ts';
export {
  bindResource,
  type Grant,
  grantsOf,
  nagResourceFinding,
  type PermissionTargets,
  type ResourceBinding,
  statementOf,
  UNSCOPED_ACTIONS,
} from './permissions.ts';
export {
  API_FUNCTION_ID,
  ControlPlaneStack,
  type ControlPlaneStackProps,
  FAILURE_DETAIL_TYPES,
  METRICS_NAMESPACE,
  PROVISION_STATE_MACHINE,
  SETUP_FUNCTION_ID,
} from './stack.ts';
