/**
 * The dependency graph: Cytoscape with the fCoSE force-directed layout, compound nodes for
 * expanded groups, node size by workloads, edge colour by decision and width by connections.
 * The graph is redrawn when the answer changes; positions are laid out afresh each time, so
 * a drill-down reads as a new picture rather than a jump.
 */
import { useEffect, useRef } from 'react';
import cytoscape, { type Core, type ElementDefinition, type EventObject } from 'cytoscape';
import fcose from 'cytoscape-fcose';
import type { MapEdge, MapNode } from '../api';
import { DECISION_COLOR } from '../format';

cytoscape.use(fcose);

declare global {
  interface Window {
    /** The live graph, for browser tests that click edges where they are drawn. */
    __bulkheadGraph?: Core;
  }
}

export interface GraphProps {
  readonly nodes: readonly MapNode[];
  readonly edges: readonly MapEdge[];
  /** The selected element: a node id, or `edge:` and a map edge id. */
  readonly selected: string | null;
  readonly onSelect: (id: string | null, kind: 'node' | 'edge' | null) => void;
  readonly onExpand: (nodeId: string) => void;
}

const NODE_COLOR: Record<MapNode['kind'], string> = {
  group: '#16263d',
  workload: '#14283a',
  addresses: '#251f3d',
};

/** A node's ring says how its workloads are enforced; networks are violet. */
export const MODE_COLOR: Readonly<Record<string, string>> = {
  full: '#22c55e',
  selective: '#a78bfa',
  visibility: '#38bdf8',
  idle: '#64748b',
  mixed: '#f59e0b',
  unmanaged: '#64748b',
};
const ADDRESS_COLOR = '#c084fc';

function elements(nodes: readonly MapNode[], edges: readonly MapEdge[]): ElementDefinition[] {
  const ids = new Set(nodes.map((n) => n.id));
  const maxConnections = Math.max(1, ...edges.map((e) => e.connections));
  const out: ElementDefinition[] = [];
  // A parent the answer names but does not list is drawn as a plain compound box.
  for (const n of nodes) {
    if (n.parent && !ids.has(n.parent)) {
      ids.add(n.parent);
      out.push({
        data: { id: n.parent, label: n.parent.slice(2).replace(/;/g, ' · '), kind: 'group' },
      });
    }
  }
  for (const n of nodes) {
    const size = n.kind === 'addresses' ? 34 : 26 + 9 * Math.sqrt(Math.max(1, n.workloads));
    out.push({
      data: {
        id: n.id,
        label: n.workloads > 1 ? `${n.label}\n${n.workloads} workloads` : n.label,
        kind: n.kind,
        size,
        color: NODE_COLOR[n.kind],
        border: n.kind === 'addresses' ? ADDRESS_COLOR : (MODE_COLOR[n.mode ?? ''] ?? '#38bdf8'),
        ...(n.parent ? { parent: n.parent } : {}),
      },
    });
  }
  for (const e of edges) {
    if (!ids.has(e.source) || !ids.has(e.target)) continue;
    out.push({
      data: {
        id: `edge:${e.id}`,
        source: e.source,
        target: e.target,
        color: DECISION_COLOR[e.decision],
        width: 1.2 + 7 * Math.sqrt(e.connections / maxConnections),
        // Quiet edges recede, so the busy paths read first.
        opacity: 0.35 + 0.6 * Math.sqrt(e.connections / maxConnections),
        decision: e.decision,
      },
    });
  }
  return out;
}

const STYLE: cytoscape.StylesheetJson = [
  {
    selector: 'node',
    style: {
      'background-color': 'data(color)',
      'border-color': 'data(border)',
      'border-width': 2.5,
      width: 'data(size)',
      height: 'data(size)',
      label: 'data(label)',
      color: '#e2e8f0',
      'font-size': 12,
      'font-weight': 500,
      'min-zoomed-font-size': 7,
      'font-family': 'Inter, ui-sans-serif, system-ui, sans-serif',
      'text-valign': 'bottom',
      'text-margin-y': 6,
      'text-wrap': 'wrap',
      'text-outline-color': '#0a1120',
      'text-outline-width': 2.5,
      'line-height': 1.25,
    },
  },
  { selector: 'node[kind = "addresses"]', style: { shape: 'round-diamond' } },
  { selector: 'node[kind = "workload"]', style: { shape: 'ellipse' } },
  { selector: 'node[kind = "group"]', style: { shape: 'round-rectangle' } },
  {
    selector: ':parent',
    style: {
      'background-color': '#0f2137',
      'background-opacity': 0.55,
      'border-color': '#38bdf8',
      'border-style': 'dashed',
      'border-width': 1.5,
      shape: 'round-rectangle',
      'text-valign': 'top',
      'text-halign': 'center',
      'text-margin-y': -6,
      'font-size': 12,
      'font-weight': 600,
      padding: '18px',
    },
  },
  {
    selector: 'edge',
    style: {
      'line-color': 'data(color)',
      'target-arrow-color': 'data(color)',
      'target-arrow-shape': 'triangle',
      'arrow-scale': 0.9,
      width: 'data(width)',
      'curve-style': 'bezier',
      'loop-direction': '-45deg',
      'loop-sweep': '-40deg',
      opacity: 'data(opacity)' as unknown as number,
    },
  },
  { selector: 'edge[decision = "blocked"]', style: { 'line-style': 'dashed' } },
  {
    selector: ':selected',
    style: { 'overlay-color': '#38bdf8', 'overlay-opacity': 0.18, 'overlay-padding': 6 },
  },
  { selector: 'edge:selected', style: { opacity: 1 } },
  { selector: 'node.faded', style: { opacity: 0.35, 'text-opacity': 0.45 } },
  { selector: 'edge.faded', style: { opacity: 0.08 } },
  { selector: 'node.faded:parent', style: { opacity: 0.6 } },
];

/** The side panel's width over the canvas (see .panel in styles.css). */
const PANEL_WIDTH = 410;
/** Room around the drawing, so the legend never covers a node. */
const FIT_PADDING = 56;

const idOf = (e: EventObject): string => (e.target as cytoscape.SingularElementReturnValue).id();

export function Graph({ nodes, edges, selected, onSelect, onExpand }: GraphProps) {
  const container = useRef<HTMLDivElement>(null);
  const cy = useRef<Core | null>(null);
  const handlers = useRef({ onSelect, onExpand });
  useEffect(() => {
    handlers.current = { onSelect, onExpand };
  });

  useEffect(() => {
    const graph = cytoscape({
      container: container.current,
      style: STYLE,
      wheelSensitivity: 0.3,
      minZoom: 0.15,
      maxZoom: 3,
      boxSelectionEnabled: false,
    });
    // `onetap` waits out the double-click window: opening the panel at once would put it
    // under a double-click's second click.
    graph.on('onetap', 'node', (e) => handlers.current.onSelect(idOf(e), 'node'));
    graph.on('tap', 'edge', (e) =>
      handlers.current.onSelect(idOf(e).slice('edge:'.length), 'edge'),
    );
    graph.on('tap', (e) => {
      if (e.target === graph) handlers.current.onSelect(null, null);
    });
    graph.on('dbltap', 'node', (e) => handlers.current.onExpand(idOf(e)));
    cy.current = graph;
    window.__bulkheadGraph = graph;
    // The canvas follows the window; the drawing stays where the user left it.
    const resized = new ResizeObserver(() => graph.resize());
    if (container.current) resized.observe(container.current);
    return () => {
      resized.disconnect();
      graph.destroy();
      cy.current = null;
      if (window.__bulkheadGraph === graph) delete window.__bulkheadGraph;
    };
  }, []);

  useEffect(() => {
    const graph = cy.current;
    if (!graph) return;
    graph.batch(() => {
      graph.elements().remove();
      graph.add(elements(nodes, edges));
    });
    const layout = graph.layout({
      name: 'fcose',
      quality: 'default',
      randomize: true,
      animate: false,
      nodeDimensionsIncludeLabels: true,
      idealEdgeLength: () => 170,
      nodeRepulsion: () => 16000,
      nodeSeparation: 110,
      gravity: 0.2,
      nestingFactor: 0.6,
      packComponents: true,
      padding: 40,
    } as cytoscape.LayoutOptions);
    layout.run();
    graph.fit(undefined, FIT_PADDING);
  }, [nodes, edges]);

  useEffect(() => {
    const graph = cy.current;
    if (!graph) return;
    graph.elements().unselect().removeClass('faded');
    if (!selected) return;
    const element = graph.getElementById(selected);
    element.select();
    // Everything not touching the selection steps back.
    const keep = selected.startsWith('edge:')
      ? element.union((element as cytoscape.EdgeSingular).connectedNodes())
      : (element as cytoscape.NodeSingular).closedNeighborhood();
    graph.elements().not(keep.union(keep.ancestors())).addClass('faded');
    // The side panel covers the canvas's right side: bring a hidden edge into the open part.
    if (selected.startsWith('edge:')) {
      const mid = (element as cytoscape.EdgeSingular).renderedMidpoint();
      const visible = graph.width() - PANEL_WIDTH;
      if (mid.x > visible - 40)
        graph.animate({ panBy: { x: visible / 2 - mid.x, y: 0 } }, { duration: 250 });
    }
  }, [selected, nodes, edges]);

  return <div className="graph" ref={container} data-testid="map-graph" />;
}
