/** Line icons for the sidebar (24px grid, stroke inherits the text colour). */
const paths: Record<string, string> = {
  map: 'M5 6a2 2 0 1 0 0-.01M19 6a2 2 0 1 0 0-.01M12 18a2 2 0 1 0 0-.01M6.5 7.5l4.2 8.8M17.5 7.5l-4.2 8.8M7 6h10',
  workloads: 'M4 5h16v5H4zM4 14h16v5H4zM8 7.5h.01M8 16.5h.01',
  flows: 'M4 7h13l-3-3M20 17H7l3 3',
  rulesets: 'M12 3l8 3v6c0 4.5-3.4 8-8 9-4.6-1-8-4.5-8-9V6zM9 12l2 2 4-4',
  generator:
    'M12 3l1.8 4.2L18 9l-4.2 1.8L12 15l-1.8-4.2L6 9l4.2-1.8zM18 15l.9 2.1L21 18l-2.1.9L18 21l-.9-2.1L15 18l2.1-.9z',
  provisioning: 'M12 3v12M7 10l5 5 5-5M5 21h14',
  rollout: 'M4 18h4v-4h4v-4h4V6h4M16 6h4v4',
  audit: 'M6 3h9l4 4v14H6zM9 11h7M9 15h7M9 7h3',
  logout: 'M15 4h4v16h-4M10 8l-4 4 4 4M6 12h11',
};

export function Icon({ name, size = 18 }: { name: string; size?: number }) {
  return (
    <svg
      width={size}
      height={size}
      viewBox="0 0 24 24"
      fill="none"
      stroke="currentColor"
      strokeWidth="1.8"
      strokeLinecap="round"
      strokeLinejoin="round"
      aria-hidden="true"
    >
      <path d={paths[name] ?? ''} />
    </svg>
  );
}

export function Logo() {
  return (
    <svg width="28" height="28" viewBox="0 0 32 32" aria-hidden="true">
      <defs>
        <linearGradient id="bh-logo" x1="0" y1="0" x2="1" y2="1">
          <stop offset="0" stopColor="#38bdf8" />
          <stop offset="1" stopColor="#6366f1" />
        </linearGradient>
      </defs>
      <rect width="32" height="32" rx="8" fill="url(#bh-logo)" />
      <path d="M8 9h16v3.5H8zM8 14.3h16v3.5H8zM8 19.6h16v3.5H8z" fill="#fff" opacity="0.92" />
    </svg>
  );
}
