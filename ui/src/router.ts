/** A small history router: the pages are few and flat, so a path is a page. */
import { useEffect, useState } from 'react';

export const PAGES = [
  'map',
  'workloads',
  'flows',
  'rulesets',
  'generator',
  'provisioning',
  'rollout',
  'audit',
] as const;
export type Page = (typeof PAGES)[number];

function current(): Page {
  const first = window.location.pathname.split('/')[1] ?? '';
  return (PAGES as readonly string[]).includes(first) ? (first as Page) : 'map';
}

const listeners = new Set<() => void>();

export function navigate(page: Page, search = ''): void {
  window.history.pushState(null, '', `/${page}${search}`);
  for (const l of listeners) l();
}

export function usePage(): Page {
  const [page, setPage] = useState<Page>(current);
  useEffect(() => {
    const update = () => setPage(current());
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return page;
}

/** The query string of the current location (e.g. the explorer's filters from a map edge). */
export const searchParams = (): URLSearchParams => new URLSearchParams(window.location.search);
