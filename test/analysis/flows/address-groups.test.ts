import { describe, expect, it } from 'vitest';
import { AddressGrouper, privateSubnet } from '../../../src/analysis/flows/address-groups.js';
import { AddressSet, addressValue } from '../../../src/policy/addresses.js';

const subnet = (a: string) => {
  const { family, value } = addressValue(a);
  return privateSubnet(family, value);
};

describe('address groups', () => {
  it('shows private addresses by their subnet', () => {
    expect(subnet('10.20.30.40')).toBe('10.20.0.0/16');
    expect(subnet('172.16.5.1')).toBe('172.16.0.0/12');
    expect(subnet('172.31.255.255')).toBe('172.16.0.0/12');
    expect(subnet('172.32.0.1')).toBeNull();
    expect(subnet('192.168.7.9')).toBe('192.168.0.0/16');
    expect(subnet('fd12:3456:789a:1::5')).toBe('fd12:3456:789a::/48');
    expect(subnet('8.8.8.8')).toBeNull();
    expect(subnet('2001:db8::1')).toBeNull();
  });

  it('prefers the smallest IP list holding an address, then the subnet, then internet', () => {
    const g = new AddressGrouper([
      { name: 'everything', addresses: AddressSet.of(['0.0.0.0/0']) },
      { name: 'corporate', addresses: AddressSet.of(['198.19.0.0/16'], ['198.19.99.0/24']) },
      { name: 'dc-10', addresses: AddressSet.of(['10.20.0.0/16']) },
      { name: 'empty', addresses: AddressSet.of([]) },
    ]);
    expect(g.groupOf('198.19.1.1')).toBe('corporate');
    expect(g.groupOf('198.19.99.1')).toBe('everything');
    expect(g.groupOf('10.20.1.1')).toBe('dc-10');
    expect(g.groupOf('10.21.1.1')).toBe('everything');
    expect(g.groupOf('2001:db8::1')).toBe('internet');
    expect(g.groupOf('fd00::1')).toBe('fd00::/48');
    expect(g.groupOf('not an address')).toBe('internet');
    // asked twice: the same answer (from the memo)
    expect(g.groupOf('198.19.1.1')).toBe('corporate');
  });

  it('without IP lists, groups by subnet or internet', () => {
    const g = new AddressGrouper([]);
    expect(g.groupOf('10.9.3.4')).toBe('10.9.0.0/16');
    expect(g.groupOf('1.1.1.1')).toBe('internet');
  });
});
