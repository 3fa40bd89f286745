/** The policy generator: observed flows in, a reviewed-before-applied draft ruleset out. */
export { generatePolicy } from './generate.js';
export { draftDocuments, draftYaml, ipListDocument, rulesetDocument } from './documents.js';
export { GenerationError } from './errors.js';
export { groupFlows } from './observe.js';
export { parseScope } from './scope.js';
export * from './types.js';
