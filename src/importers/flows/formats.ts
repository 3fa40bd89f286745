/**
 * The flow file formats the control plane reads: its schemas, the importers and the CLI name
 * them from here (the CLI without loading the importers themselves).
 */
export const FLOW_IMPORT_FORMATS = ['csv', 'json', 'conntrack', 'netflow'] as const;
export type FlowImportFormat = (typeof FLOW_IMPORT_FORMATS)[number];
