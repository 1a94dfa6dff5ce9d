package org.apache.samza.azure;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import com.microsoft.azure.storage.CloudStorageAccount;
import com.microsoft.azure.storage.blob.CloudBlobContainer;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.samza.azure.checkpoint.AzureCheckpointManager;
import org.apache.samza.azure.coordination.AzureCoordinationUtils;
import org.apache.samza.azure.errors.AzureConfigException;
import org.apache.samza.azure.testing.Await;
import org.apache.samza.config.MapConfig;
import org.apache.samza.coordinator.DistributedLock;
import org.apache.samza.coordinator.JobCoordinator;
import org.apache.samza.coordinator.JobCoordinatorListener;
import org.apache.samza.job.model.JobModel;
import org.apache.samza.metrics.MetricsRegistryMap;
import org.junit.Test;

/**
 * The coordinator, the checkpoint manager, CoordinationUtils and the JobStorageNames tool read
 * {@code job.name} and {@code job.id} alike: for the same config each uses the same container and
 * tables, or each refuses the config naming the same key. Observed in storage, not asked of the
 * code, so a component that parses the identity its own way is caught.
 */
public class JobIdentityTest extends AzuriteTest {
  private static final AtomicInteger JOBS = new AtomicInteger();

  /** Samza's own reading: a leading space is part of the name; a missing id is "1". */
  @Test
  public void aNameWithALeadingSpaceNamesTheSameStorageEverywhere() throws Exception {
    String job = " orders" + JOBS.incrementAndGet();
    assertAllAgree(job, null);
  }

  @Test
  public void aNameWithATrailingSpaceNamesTheSameStorageEverywhere() throws Exception {
    String job = "orders" + JOBS.incrementAndGet() + " ";
    assertAllAgree(job, "7");
  }

  @Test
  public void anEmptyJobIdIsReadAlikeEverywhere() throws Exception {
    String job = "orders" + JOBS.incrementAndGet();
    Map<String, String> outcome = assertAllAgree(job, "");
    assertEquals("an empty job.id is refused, naming the key", "refused: job.id", outcome.get("-"));
  }

  @Test
  public void aBlankJobNameIsRefusedEverywhere() throws Exception {
    Map<String, String> outcome = assertAllAgree("  ", null);
    assertEquals("refused: job.name", outcome.get("-"));
  }

  /**
   * Runs each component on the same config and returns their common outcome: the names each one
   * created in storage (by kind), or "refused: key" under "-".
   */
  private Map<String, String> assertAllAgree(String job, String jobId) throws Exception {
    Map<String, String> config = new HashMap<>(azurite.config());
    config.put("job.name", job);
    if (jobId != null) {
      config.put("job.id", jobId);
    }
    Map<String, Map<String, String>> outcomes = new TreeMap<>();
    outcomes.put("JobStorageNames", tool(job, jobId));
    outcomes.put("coordinator", observe(() -> runCoordinator(config)));
    outcomes.put("checkpoint manager", observe(() -> runCheckpointManager(config)));
    outcomes.put("CoordinationUtils", observe(() -> runCoordinationUtils(config)));

    // Each component creates only the names it uses; those must be the tool's names.
    Map<String, String> expected = outcomes.get("JobStorageNames");
    for (Map.Entry<String, Map<String, String>> o : outcomes.entrySet()) {
      for (Map.Entry<String, String> name : o.getValue().entrySet()) {
        assertEquals(
            o.getKey()
                + "'s "
                + name.getKey()
                + " for job.name='"
                + job
                + "' job.id="
                + (jobId == null ? "(absent)" : "'" + jobId + "'")
                + ", all: "
                + outcomes,
            expected.get(name.getKey()),
            name.getValue());
      }
      assertTrue(o.getKey() + " did something: " + outcomes, !o.getValue().isEmpty());
    }
    return expected;
  }

  private interface Body {
    void run() throws Exception;
  }

  /**
   * What `body` created in an empty account, by kind, or its refusal of the config. Empty, so that
   * a component using what another created is seen using it.
   */
  private static Map<String, String> observe(Body body) throws Exception {
    CloudStorageAccount account = CloudStorageAccount.parse(azurite.connectionString());
    for (CloudBlobContainer c : account.createCloudBlobClient().listContainers()) {
      c.delete();
    }
    for (String t : account.createCloudTableClient().listTables()) {
      account.createCloudTableClient().getTableReference(t).delete();
    }
    try {
      body.run();
    } catch (AzureConfigException e) {
      return refusal(e);
    }
    Map<String, String> created = new TreeMap<>();
    for (Map.Entry<String, String> e : stored().entrySet()) {
      created.put(e.getValue(), e.getKey());
    }
    return created;
  }

  private static Map<String, String> refusal(AzureConfigException e) {
    Map<String, String> r = new TreeMap<>();
    String m = e.getMessage();
    // The key alone, so that refusals worded differently still compare equal.
    r.put(
        "-",
        "refused: " + (m.contains("job.id") ? "job.id" : m.contains("job.name") ? "job.name" : m));
    return r;
  }

  /** Every container and table in the account: name to kind. */
  private static Map<String, String> stored() throws Exception {
    CloudStorageAccount account = CloudStorageAccount.parse(azurite.connectionString());
    Map<String, String> all = new TreeMap<>();
    for (CloudBlobContainer c : account.createCloudBlobClient().listContainers()) {
      all.put(c.getName(), "container");
    }
    for (String t : account.createCloudTableClient().listTables()) {
      all.put(t, t.startsWith("samzacp") ? "checkpointTable" : "membershipTable");
    }
    return all;
  }

  /** The operator tool's answer, read from its output as an operator would. */
  private static Map<String, String> tool(String job, String jobId) {
    PrintStream out = System.out;
    ByteArrayOutputStream captured = new ByteArrayOutputStream();
    try {
      System.setOut(new PrintStream(captured, true, "UTF-8"));
      JobStorageNames.main(jobId == null ? new String[] {job} : new String[] {job, jobId});
    } catch (AzureConfigException e) {
      return refusal(e);
    } catch (java.io.UnsupportedEncodingException e) {
      throw new AssertionError(e);
    } finally {
      System.setOut(out);
    }
    Map<String, String> names = new TreeMap<>();
    for (String line : new String(captured.toByteArray(), StandardCharsets.UTF_8).split("\n")) {
      String[] kv = line.trim().split("\\s+")[0].split("=", 2);
      if (kv.length == 2) {
        names.put(kv[0].equals("container") ? "container" : kv[0], kv[1]);
      }
    }
    return names;
  }

  private static void runCoordinator(Map<String, String> base) throws Exception {
    Path dir = Files.createTempDirectory("samza-azure-identity");
    Files.createDirectories(dir.resolve("input"));
    Files.write(dir.resolve("input").resolve("0"), new byte[0]);
    Map<String, String> config = new HashMap<>(base);
    config.put("systems.fs.samza.factory", "org.apache.samza.azure.testing.job.FileSystemFactory");
    config.put("systems.fs.dir", dir.toString());
    config.put("task.inputs", "fs.input");
    config.put("task.chooser.class", FencedChooserFactory.class.getName());
    JobCoordinator jc =
        new AzureJobCoordinatorFactory()
            .getJobCoordinator("solo", new MapConfig(config), new MetricsRegistryMap(), null);
    AtomicReference<JobModel> model = new AtomicReference<>();
    List<Throwable> failures = new ArrayList<>();
    jc.setListener(
        new JobCoordinatorListener() {
          @Override
          public void onJobModelExpired() {}

          @Override
          public void onNewJobModel(String processorId, JobModel jobModel) {
            model.set(jobModel);
          }

          @Override
          public void onCoordinatorStop() {}

          @Override
          public void onCoordinatorFailure(Throwable t) {
            synchronized (failures) {
              failures.add(t);
            }
          }
        });
    try {
      jc.start();
      Await.until(
          "a job model",
          30_000,
          () -> {
            synchronized (failures) {
              return model.get() != null || !failures.isEmpty();
            }
          });
      synchronized (failures) {
        for (Throwable t : failures) {
          if (t instanceof AzureConfigException) {
            throw (AzureConfigException) t;
          }
          throw new AssertionError(t);
        }
      }
    } finally {
      jc.stop();
    }
  }

  private static void runCheckpointManager(Map<String, String> base) {
    Map<String, String> config = new HashMap<>(base);
    config.put("processor.id", "solo");
    new AzureCheckpointManager(new MapConfig(config), new MetricsRegistryMap()).createResources();
  }

  private static void runCoordinationUtils(Map<String, String> config) {
    try (AzureCoordinationUtils utils =
        (AzureCoordinationUtils)
            new AzureCoordinationUtilsFactory()
                .getCoordinationUtils("group", "solo", new MapConfig(config))) {
      utils.getLatch(1, "latch").countDown();
      DistributedLock lock = utils.getLock("lock");
      assertTrue(lock.lock(Duration.ofSeconds(30)));
      lock.unlock();
    }
  }
}
