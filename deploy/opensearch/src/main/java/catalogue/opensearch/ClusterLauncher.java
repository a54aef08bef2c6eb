package catalogue.opensearch;

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.codelibs.opensearch.runner.OpenSearchRunner;
import org.opensearch.action.admin.cluster.health.ClusterHealthRequest;
import org.opensearch.action.admin.cluster.health.ClusterHealthResponse;
import org.opensearch.common.Priority;
import org.opensearch.common.unit.TimeValue;
import org.opensearch.node.Node;

/**
 * Runs an N-node OpenSearch cluster inside this JVM, bound to 127.0.0.1 only.
 *
 * <p>Protocol (stdout carries only these lines; all logging goes to stderr):
 *
 * <pre>
 *   READY http://127.0.0.1:P1,http://127.0.0.1:P2,...   cluster is green with N nodes
 *   ERROR message                                        start-up failed (then exit != 0) or bad command
 * </pre>
 *
 * Then commands are read from stdin, one per line:
 *
 * <pre>
 *   stop I    close node I (1-based), e.g. to simulate a failure  -> STOPPED I
 *   start I   start a stopped node I again                        -> STARTED I
 *   status    which nodes run in this JVM                         -> STATUS 1=up 2=down 3=up
 *   quit      close all nodes and exit 0                          -> BYE
 * </pre>
 *
 * EOF on stdin behaves like {@code quit} (so the cluster dies with its parent process), unless
 * {@code --ignore-stdin} is given (background/daemon use). SIGTERM/SIGINT close all nodes too.
 *
 * <p>Exit codes: 0 ok, 1 start-up failed, 2 bad arguments, 4 stdin closed during start-up,
 * 5 ports in use (3 is the JVM's own code for -XX:+ExitOnOutOfMemoryError).
 */
public final class ClusterLauncher {

    private static final String HOST = "127.0.0.1";
    private static final long JOIN_TIMEOUT_MILLIS = 60_000L;
    private static final long LEAVE_TIMEOUT_MILLIS = 20_000L;

    /** The real stdout; System.out is redirected to stderr so library output cannot corrupt it. */
    private final PrintStream protocol;

    private final int nodes;
    private final int baseHttpPort;
    private final int baseTransportPort;
    private final Path basePath;
    private final String clusterName;
    private final String logLevel;
    private final long startTimeoutMillis;
    private final boolean ignoreStdin;

    private final Object lock = new Object();
    private OpenSearchRunner runner;
    private boolean shutDown;

    /** Lines from stdin; {@link #EOF} marks end of input. */
    private final BlockingQueue<String> commands = new LinkedBlockingQueue<>();
    private static final String EOF = new String("<eof>");
    private volatile boolean ready;

    private ClusterLauncher(PrintStream protocol, Options options) {
        this.protocol = protocol;
        this.nodes = options.nodes;
        this.baseHttpPort = options.baseHttpPort;
        this.baseTransportPort = options.baseTransportPort;
        this.basePath = options.basePath;
        this.clusterName = options.clusterName;
        this.logLevel = options.logLevel;
        this.startTimeoutMillis = options.startTimeoutSeconds * 1000L;
        this.ignoreStdin = options.ignoreStdin;
    }

    public static void main(String[] args) {
        PrintStream protocol =
                new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
        // The runner prints progress to System.out; send it to stderr, minus the per-node banner
        // (it shows the runner's default node names, not ours).
        System.setOut(new PrintStream(new BannerFilter(System.err), true, StandardCharsets.UTF_8));

        Options options;
        try {
            options = Options.parse(args);
        } catch (IllegalArgumentException e) {
            protocol.println("ERROR " + e.getMessage());
            System.err.println(Options.USAGE);
            System.exit(2);
            return;
        }
        if (options.help) {
            System.err.println(Options.USAGE);
            System.exit(0);
            return;
        }
        System.exit(new ClusterLauncher(protocol, options).run());
    }

    private int run() {
        String busy = findBusyPorts();
        if (busy != null) {
            reply("ERROR " + busy);
            return 5; // not 3: -XX:+ExitOnOutOfMemoryError exits with 3
        }

        Thread hook = new Thread(this::shutdown, "cluster-launcher-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        if (!ignoreStdin) {
            // Read stdin from the very beginning so that a parent that dies while the cluster is
            // still starting (stdin EOF) takes the JVM with it.
            Thread reader = new Thread(this::readStdin, "cluster-launcher-stdin");
            reader.setDaemon(true);
            reader.start();
        }

        long started = System.nanoTime();
        try {
            startCluster();
        } catch (Exception e) {
            e.printStackTrace();
            reply("ERROR cluster start failed: " + rootMessage(e));
            shutdown();
            return 1;
        }
        long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
        System.err.printf(Locale.ROOT, "cluster-launcher: %d node(s) green after %d ms%n", nodes, millis);
        ready = true;
        reply("READY " + String.join(",", urls()));

        if (ignoreStdin) {
            try {
                new CountDownLatch(1).await(); // until SIGTERM runs the shutdown hook
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            shutdown();
            return 0;
        }
        commandLoop();
        shutdown();
        reply("BYE");
        return 0;
    }

    // ------------------------------------------------------------------ cluster start

    private void startCluster() throws IOException {
        List<String> seedHosts = new ArrayList<>();
        List<String> nodeNames = new ArrayList<>();
        for (int i = 1; i <= nodes; i++) {
            seedHosts.add(HOST + ":" + transportPort(i));
            nodeNames.add(nodeName(i));
        }
        configureLogging();

        synchronized (lock) {
            if (shutDown) {
                throw new IllegalStateException("shutting down");
            }
            runner = new OpenSearchRunner();
            // We set http.port ourselves; -1 disables the runner's own port probing (which would
            // also reject ports above 9299).
            runner.setMaxHttpPort(-1);
            runner.onBuild((id, settings) -> {
                // id is 1-based here.
                settings.put("node.name", nodeName(id));
                settings.put("cluster.name", clusterName);
                settings.put("network.host", HOST);
                settings.put("http.port", String.valueOf(httpPort(id)));
                settings.put("transport.port", String.valueOf(transportPort(id)));
                settings.putList("discovery.seed_hosts", seedHosts);
                settings.putList("cluster.initial_cluster_manager_nodes", nodeNames);
                settings.putList("node.roles", "cluster_manager", "data", "ingest");
                // Nodes start one after another; without this each node blocks 30 s waiting for a
                // cluster manager that cannot be elected until a quorum of nodes has started.
                settings.put("discovery.initial_state_timeout", "0s");
                // A test cluster must not go yellow/red because the disk is 90% full.
                settings.put("cluster.routing.allocation.disk.threshold_enabled", false);
                // All nodes share one heap; the real-memory breaker would count every node's usage
                // against each node and cause spurious 429s under load.
                settings.put("indices.breaker.total.use_real_memory", false);
                settings.put("action.destructive_requires_name", false);
            });
            runner.build(
                    "-basePath", basePath.toString(),
                    "-numOfNode", String.valueOf(nodes),
                    "-baseHttpPort", String.valueOf(baseHttpPort),
                    "-clusterName", clusterName,
                    "-disableESLogger");
        }
        waitForCluster(0, String.valueOf(nodes), true, startTimeoutMillis);
    }

    /**
     * Configures log4j once for the whole JVM: everything to stderr at the chosen level.
     *
     * <p>We start the runner with -disableESLogger: otherwise every node re-runs OpenSearch's
     * LogConfigurator, which replaces System.out/err with logging streams and, from the second
     * node on, silently drops all log output. Must run before any log4j class is initialised.
     */
    private void configureLogging() throws IOException {
        Files.createDirectories(basePath);
        Path file = basePath.resolve("log4j2.properties");
        String config = String.join("\n",
                "# Written by ClusterLauncher on every start; edits are overwritten.",
                "status = error",
                "shutdownHook = disable",
                "appender.console.type = Console",
                "appender.console.name = console",
                "appender.console.target = SYSTEM_ERR",
                "appender.console.layout.type = PatternLayout",
                "appender.console.layout.pattern = [%d{ISO8601}][%-5p][%c{1.}][%t] %m%n",
                "rootLogger.level = " + logLevel,
                "rootLogger.appenderRef.console.ref = console",
                // Harmless warnings repeated on every reroute / node start.
                "logger.allocation.name = org.opensearch.cluster.routing.allocation.AllocationService",
                "logger.allocation.level = error",
                "logger.dangling.name = org.opensearch.gateway.DanglingIndicesState",
                "logger.dangling.level = error",
                // Stack traces for every connection attempt to a node that was stopped on purpose.
                "logger.connections.name = org.opensearch.cluster.NodeConnectionsService",
                "logger.connections.level = error",
                "");
        Files.writeString(file, config, StandardCharsets.UTF_8);
        System.setProperty("log4j2.configurationFile", file.toUri().toString());
        System.setProperty("log4j2.disable.jmx", "true");
    }

    /** Returns a description of the first busy port, or null when all ports can be bound. */
    private String findBusyPorts() {
        List<String> busy = new ArrayList<>();
        for (int i = 1; i <= nodes; i++) {
            if (!canBind(httpPort(i))) {
                busy.add(httpPort(i) + " (http, node " + i + ")");
            }
            if (!canBind(transportPort(i))) {
                busy.add(transportPort(i) + " (transport, node " + i + ")");
            }
        }
        if (busy.isEmpty()) {
            return null;
        }
        return "port(s) already in use on " + HOST + ": " + String.join(", ", busy)
                + "; is another cluster running? choose other base ports";
    }

    private static boolean canBind(int port) {
        try (ServerSocket socket = new ServerSocket()) {
            socket.setReuseAddress(true); // like OpenSearch; ignore sockets in TIME_WAIT
            socket.bind(new InetSocketAddress(InetAddress.getByName(HOST), port));
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    // ------------------------------------------------------------------ commands

    private void readStdin() {
        BufferedReader in =
                new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try {
            String line;
            while ((line = in.readLine()) != null) {
                commands.add(line);
            }
        } catch (IOException e) {
            System.err.println("cluster-launcher: reading stdin failed: " + e);
        }
        commands.add(EOF);
        if (!ready) {
            System.err.println("cluster-launcher: stdin closed during start-up, aborting");
            System.exit(4); // the shutdown hook closes whatever has started
        }
    }

    private void commandLoop() {
        while (true) {
            String line;
            try {
                line = commands.take();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            if (line == EOF) {
                System.err.println("cluster-launcher: stdin closed, shutting down");
                return;
            }
            String[] words = line.trim().split("\\s+");
            String command = words[0].toLowerCase(Locale.ROOT);
            try {
                switch (command) {
                    case "":
                        break;
                    case "quit":
                    case "exit":
                        return;
                    case "stop":
                        stopNode(nodeArgument(words));
                        break;
                    case "start":
                        startNode(nodeArgument(words));
                        break;
                    case "status":
                        reply(status());
                        break;
                    default:
                        reply("ERROR unknown command '" + line.trim()
                                + "' (expected: stop I, start I, status, quit)");
                }
            } catch (IllegalArgumentException | IllegalStateException e) {
                reply("ERROR " + e.getMessage());
            } catch (Exception e) {
                e.printStackTrace();
                reply("ERROR " + command + " failed: " + rootMessage(e));
            }
        }
    }

    private int nodeArgument(String[] words) {
        if (words.length != 2) {
            throw new IllegalArgumentException("usage: " + words[0] + " I   (1.." + nodes + ")");
        }
        int index;
        try {
            index = Integer.parseInt(words[1]);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("not a node number: " + words[1]);
        }
        if (index < 1 || index > nodes) {
            throw new IllegalArgumentException("node " + index + " out of range 1.." + nodes);
        }
        return index;
    }

    private void stopNode(int index) throws IOException, InterruptedException {
        synchronized (lock) {
            Node node = runner.getNode(index - 1);
            if (node.isClosed()) {
                throw new IllegalStateException("node " + index + " is already stopped");
            }
            node.close();
            if (!node.awaitClose(30, TimeUnit.SECONDS)) {
                System.err.println("cluster-launcher: node " + index + " did not close within 30 s");
            }
            // Let the survivors notice (and elect a new cluster manager if needed) so that the
            // caller sees a settled cluster. Without a quorum this cannot succeed; don't hang.
            int first = firstRunningNode();
            if (first >= 0) {
                try {
                    waitForCluster(first, String.valueOf(runningNodes()), false, LEAVE_TIMEOUT_MILLIS);
                } catch (IllegalStateException e) {
                    System.err.println("cluster-launcher: after stopping node " + index + ": "
                            + e.getMessage());
                }
            }
        }
        reply("STOPPED " + index);
    }

    private void startNode(int index) {
        synchronized (lock) {
            if (!runner.getNode(index - 1).isClosed()) {
                throw new IllegalStateException("node " + index + " is already running");
            }
            if (!runner.startNode(index - 1)) {
                throw new IllegalStateException("node " + index + " failed to start (see log)");
            }
            waitForCluster(index - 1, String.valueOf(runningNodes()), false, JOIN_TIMEOUT_MILLIS);
        }
        reply("STARTED " + index);
    }

    private String status() {
        StringBuilder out = new StringBuilder("STATUS");
        synchronized (lock) {
            for (int i = 0; i < nodes; i++) {
                out.append(' ').append(i + 1).append('=')
                        .append(runner.getNode(i).isClosed() ? "down" : "up");
            }
        }
        return out.toString();
    }

    // ------------------------------------------------------------------ helpers

    /** Waits via node {@code via} (0-based) until the cluster has the given nodes (and is green). */
    private ClusterHealthResponse waitForCluster(
            int via, String waitForNodes, boolean green, long timeoutMillis) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        String last = "no response";
        while (true) {
            long remaining = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
            if (remaining <= 0) {
                throw new IllegalStateException("cluster not ready after " + timeoutMillis / 1000
                        + " s (waiting for " + waitForNodes + " node(s)"
                        + (green ? ", green" : "") + "): " + last);
            }
            TimeValue step = TimeValue.timeValueMillis(Math.min(remaining, 10_000L));
            ClusterHealthRequest request = new ClusterHealthRequest()
                    .waitForNodes(waitForNodes)
                    .waitForEvents(Priority.LANGUID)
                    .timeout(step);
            request.clusterManagerNodeTimeout(step);
            if (green) {
                request.waitForGreenStatus();
            }
            try {
                ClusterHealthResponse response =
                        runner.getNode(via).client().admin().cluster().health(request).actionGet();
                if (!response.isTimedOut()) {
                    return response;
                }
                last = "status " + response.getStatus() + ", " + response.getNumberOfNodes()
                        + " node(s)";
            } catch (Exception e) {
                last = rootMessage(e);
                sleepQuietly(250);
            }
        }
    }

    private int runningNodes() {
        int count = 0;
        for (int i = 0; i < nodes; i++) {
            if (!runner.getNode(i).isClosed()) {
                count++;
            }
        }
        return count;
    }

    private int firstRunningNode() {
        for (int i = 0; i < nodes; i++) {
            if (!runner.getNode(i).isClosed()) {
                return i;
            }
        }
        return -1;
    }

    /** Closes all nodes; idempotent, called from the main thread and the shutdown hook. */
    private void shutdown() {
        synchronized (lock) {
            if (shutDown) {
                return;
            }
            shutDown = true;
            if (runner == null) {
                return;
            }
            try {
                runner.close();
            } catch (IOException | RuntimeException e) {
                System.err.println("cluster-launcher: error while closing nodes: " + e);
            }
        }
    }

    private List<String> urls() {
        List<String> urls = new ArrayList<>();
        for (int i = 1; i <= nodes; i++) {
            urls.add("http://" + HOST + ":" + httpPort(i));
        }
        return urls;
    }

    private int httpPort(int index) {
        return baseHttpPort + index;
    }

    private int transportPort(int index) {
        return baseTransportPort + index;
    }

    private static String nodeName(int index) {
        return "node-" + index;
    }

    private void reply(String line) {
        protocol.println(line);
        protocol.flush();
    }

    private static String rootMessage(Throwable e) {
        Throwable root = e;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        String message = root == e ? String.valueOf(e.getMessage())
                : e.getMessage() + " (caused by " + root + ")";
        return message.replace('\n', ' ');
    }

    private static void sleepQuietly(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Drops the runner's start-up banner lines ("Node Name: Node 1", "Creating ...", ...). */
    private static final class BannerFilter extends OutputStream {
        private static final String[] DROPPED = {
            "Cluster Name:", "Base Path:", "Num Of Node:", "Creating ", "Node Name:", "HTTP Port:",
            "Data Directory:", "Log Directory:",
        };
        private final OutputStream out;
        private final ByteArrayOutputStream line = new ByteArrayOutputStream();

        BannerFilter(OutputStream out) {
            this.out = out;
        }

        @Override
        public synchronized void write(int b) throws IOException {
            line.write(b);
            if (b == '\n') {
                flushLine();
            }
        }

        @Override
        public synchronized void flush() throws IOException {
            out.flush();
        }

        private void flushLine() throws IOException {
            String text = line.toString(StandardCharsets.UTF_8);
            line.reset();
            for (String prefix : DROPPED) {
                if (text.startsWith(prefix)) {
                    return;
                }
            }
            out.write(text.getBytes(StandardCharsets.UTF_8));
            out.flush();
        }
    }

    // ------------------------------------------------------------------ options

    private static final class Options {
        static final String USAGE = String.join("\n",
                "usage: ClusterLauncher [--nodes N] [--base-http-port P] [--base-transport-port T]",
                "                       [--base-path DIR] [--cluster-name NAME] [--log-level LEVEL]",
                "                       [--start-timeout SECONDS] [--ignore-stdin]",
                "  node i (1..N) listens on 127.0.0.1, http P+i, transport T+i",
                "  defaults: N=3, P=9250, T=P+100, DIR=./opensearch-cluster, NAME=catalogue-test,",
                "            LEVEL=info, SECONDS=180");

        int nodes = 3;
        int baseHttpPort = 9250;
        int baseTransportPort = -1;
        Path basePath = Paths.get("opensearch-cluster");
        String clusterName = "catalogue-test";
        String logLevel = "info";
        int startTimeoutSeconds = 180;
        boolean ignoreStdin;
        boolean help;

        static Options parse(String[] args) {
            Options o = new Options();
            for (int i = 0; i < args.length; i++) {
                String arg = args[i];
                String value = null;
                int eq = arg.indexOf('=');
                if (arg.startsWith("--") && eq > 0) {
                    value = arg.substring(eq + 1);
                    arg = arg.substring(0, eq);
                }
                switch (arg) {
                    case "-h":
                    case "--help":
                        o.help = true;
                        continue;
                    case "--ignore-stdin":
                        o.ignoreStdin = true;
                        continue;
                    default:
                        break;
                }
                if (value == null) {
                    if (i + 1 >= args.length) {
                        throw new IllegalArgumentException("missing value for " + arg);
                    }
                    value = args[++i];
                }
                switch (arg) {
                    case "--nodes":
                        o.nodes = parseInt(arg, value, 1, 20);
                        break;
                    case "--base-http-port":
                        o.baseHttpPort = parseInt(arg, value, 1024, 65000);
                        break;
                    case "--base-transport-port":
                        o.baseTransportPort = parseInt(arg, value, 1024, 65000);
                        break;
                    case "--base-path":
                        o.basePath = Paths.get(value);
                        break;
                    case "--cluster-name":
                        if (!value.matches("[A-Za-z0-9_.-]+")) {
                            throw new IllegalArgumentException("bad cluster name: " + value);
                        }
                        o.clusterName = value;
                        break;
                    case "--log-level":
                        o.logLevel = value.toLowerCase(Locale.ROOT);
                        if (!o.logLevel.matches("off|fatal|error|warn|info|debug|trace|all")) {
                            throw new IllegalArgumentException("bad log level: " + value);
                        }
                        break;
                    case "--start-timeout":
                        o.startTimeoutSeconds = parseInt(arg, value, 1, 86_400);
                        break;
                    default:
                        throw new IllegalArgumentException("unknown option: " + arg);
                }
            }
            if (o.baseTransportPort < 0) {
                o.baseTransportPort = o.baseHttpPort + 100;
            }
            o.basePath = o.basePath.toAbsolutePath().normalize();
            int httpLow = o.baseHttpPort + 1;
            int httpHigh = o.baseHttpPort + o.nodes;
            int transportLow = o.baseTransportPort + 1;
            int transportHigh = o.baseTransportPort + o.nodes;
            if (httpLow <= transportHigh && transportLow <= httpHigh) {
                throw new IllegalArgumentException("http ports " + httpLow + "-" + httpHigh
                        + " overlap transport ports " + transportLow + "-" + transportHigh);
            }
            return o;
        }

        private static int parseInt(String name, String value, int min, int max) {
            int parsed;
            try {
                parsed = Integer.parseInt(value);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(name + " needs an integer, got '" + value + "'");
            }
            if (parsed < min || parsed > max) {
                throw new IllegalArgumentException(name + " must be in " + min + ".." + max);
            }
            return parsed;
        }
    }
}
