package org.apache.samza.azure.testing.job;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.samza.azure.JobStorageNames;
import org.apache.samza.azure.errors.StorageNotFoundException;
import org.apache.samza.azure.storage.AzureStorageClient;

/**
 * Finds a job's current leader and JobModel version: for our coordinator from the JobModel
 * document's header in storage (read directly, past any proxy fault); for other coordinators
 * (ZooKeeper, upstream samza-azure) from the line a processor logs on becoming leader.
 */
public final class LeaderFinder {
  private static final Pattern LEADER = Pattern.compile("\"leader\":\"([^\"]*)\"");
  private static final Pattern VERSION = Pattern.compile("\"version\":([0-9]+)");

  private final String jobName;
  private final String jobId;
  private final Map<String, String> storageConfig = new HashMap<>();
  private final ProcessorJvms jvms;
  private volatile String leaderLogLine;

  /** {@code config}: the job's, whose storage keys give the harness's own connection. */
  LeaderFinder(String jobName, Map<String, String> config, ProcessorJvms jvms) {
    this.jobName = jobName;
    // Null when the config has none, as the coordinator reads it.
    this.jobId = config.get("job.id");
    this.jvms = jvms;
    config.forEach(
        (k, v) -> {
          if (k.startsWith("azure.storage.") || k.startsWith("sensitive.azure.storage.")) {
            storageConfig.put(k, v);
          }
        });
  }

  /** For coordinators other than ours: the log text a processor prints on becoming leader. */
  public void leaderFromLogs(String line) {
    leaderLogLine = line;
  }

  /**
   * The current leader: for our coordinator, the processor named by the JobModel document in
   * storage; for others, the live processor that most recently logged becoming leader. Null if none
   * is known.
   */
  public String leader() throws IOException {
    if (leaderLogLine == null) {
      String doc = jobModelDocument();
      if (doc == null) {
        return null;
      }
      Matcher m = LEADER.matcher(header(doc));
      return m.find() && !m.group(1).isEmpty() ? m.group(1) : null;
    }
    String leader = null;
    String latest = "";
    for (String id : jvms.ids()) {
      if (!jvms.isRunning(id)) {
        continue;
      }
      for (String line : jvms.output(id)) {
        // Lines start with HH:mm:ss.SSS, so they sort by time within a run.
        if (line.contains(leaderLogLine) && line.compareTo(latest) > 0) {
          latest = line;
          leader = id;
        }
      }
    }
    return leader;
  }

  /**
   * The JobModel version the document in storage names (our coordinator only), or 0 when there is
   * no document yet.
   */
  public long version() throws IOException {
    String doc = jobModelDocument();
    if (doc == null) {
      return 0;
    }
    Matcher m = VERSION.matcher(header(doc));
    if (!m.find()) {
      throw new IOException("JobModel document header names no version: " + doc);
    }
    return Long.parseLong(m.group(1));
  }

  /** The JobModel document, or null when there is none yet. */
  private String jobModelDocument() throws IOException {
    // Asked here, not at construction: only our coordinator's runs need the native library.
    JobStorageNames names = JobStorageNames.of(jobName, jobId);
    try (AzureStorageClient client = AzureStorageClient.open(storageConfig)) {
      return new String(
          client.readDocument(names.container, names.jobModelBlob).body(), StandardCharsets.UTF_8);
    } catch (StorageNotFoundException e) {
      return null;
    }
  }

  /** Its first line, which names the version and the leader. */
  private static String header(String doc) {
    return doc.substring(0, Math.max(0, doc.indexOf('\n')));
  }
}
