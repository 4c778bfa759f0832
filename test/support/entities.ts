/**
 * The entities.yml the association tests share: customers get new HQ keys
 * from customer_id_seq; cost centers are associated by a person and must
 * exist in HQ's cost_center.id.
 */
export const TEST_ENTITIES = `customer:
  kind: allocate
  sequence: customer_id_seq
cost_center:
  kind: manual
  references: cost_center.id
`;
