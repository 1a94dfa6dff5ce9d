package org.apache.samza.azure.coordinator;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;
import org.apache.samza.azure.testing.job.FileSystemFactory;
import org.apache.samza.config.MapConfig;
import org.apache.samza.container.TaskName;
import org.apache.samza.job.model.ContainerModel;
import org.apache.samza.job.model.JobModel;
import org.apache.samza.metrics.MetricsRegistryMap;
import org.junit.Test;

/**
 * The leader's JobModel computation with Samza's own JobModelCalculator and groupers, over a real
 * (file-based) input system: live processor ids are used, no config is published, and membership
 * changes move as few tasks as the balance allows.
 */
public class JobModelsTest {
  private static JobModels models(int partitions) throws Exception {
    Path dir = Files.createTempDirectory("jobmodels");
    Files.createDirectories(dir.resolve("input"));
    for (int p = 0; p < partitions; p++) {
      Files.createFile(dir.resolve("input").resolve(String.valueOf(p)));
    }
    Map<String, String> c = new HashMap<>();
    c.put("job.name", "models");
    c.put("systems.fs.samza.factory", FileSystemFactory.class.getName());
    c.put("systems.fs.dir", dir.toString());
    c.put("task.inputs", "fs.input");
    c.put("secret.of.the.job", "not for storage");
    return new JobModels(new MapConfig(c), new MetricsRegistryMap());
  }

  private static Map<TaskName, String> owners(JobModel model) {
    Map<TaskName, String> owners = new TreeMap<>();
    for (ContainerModel container : model.getContainers().values()) {
      container.getTasks().keySet().forEach(t -> owners.put(t, container.getId()));
    }
    return owners;
  }

  @Test
  public void membershipChangesKeepTasksWithTheirOwnersWhereTheBalanceAllows() throws Exception {
    try (JobModels m = models(12)) {
      String first = m.compute(Arrays.asList("a", "b", "c", "d"), null);
      assertTrue(first, !first.contains("not for storage"));
      JobModel one = m.read(first);
      assertEquals(12, owners(one).size());
      assertEquals(
          new java.util.TreeSet<>(Arrays.asList("a", "b", "c", "d")), one.getContainers().keySet());

      // b leaves: only b's tasks move; everyone else keeps what it had.
      JobModel two = m.read(m.compute(Arrays.asList("a", "c", "d"), one));
      Map<TaskName, String> before = owners(one);
      Map<TaskName, String> after = owners(two);
      assertEquals(12, after.size());
      for (Map.Entry<TaskName, String> e : before.entrySet()) {
        if (!e.getValue().equals("b")) {
          assertEquals("task " + e.getKey() + " moved", e.getValue(), after.get(e.getKey()));
        }
      }

      // e joins: it takes its share, and no task moves between the others.
      JobModel three = m.read(m.compute(Arrays.asList("a", "c", "d", "e"), two));
      Map<TaskName, String> joined = owners(three);
      int moved = 0;
      for (Map.Entry<TaskName, String> e : after.entrySet()) {
        String now = joined.get(e.getKey());
        if (!now.equals(e.getValue())) {
          assertEquals("a task moved between two old processors", "e", now);
          moved++;
        }
      }
      assertEquals("e's share of 12 tasks over 4", 3, moved);
    }
  }
}
