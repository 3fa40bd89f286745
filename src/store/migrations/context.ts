/** The few spellings a migration needs that differ between the databases. */
import type { ColumnDefinitionBuilder } from 'kysely';

export interface MigrationContext {
  /** For the rare statement spelled differently throughout (JSON functions, views). */
  readonly dialect: 'sqlite' | 'postgres';
  /** The column type of an auto-incrementing id. */
  readonly autoIdType: 'integer' | 'bigserial';
  readonly autoIncrement: (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder;
}
