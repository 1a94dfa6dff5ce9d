package org.apache.samza.azure.coordinator;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.samza.SamzaException;
import org.apache.samza.config.Config;
import org.apache.samza.config.MapConfig;
import org.apache.samza.config.TaskConfig;
import org.apache.samza.container.TaskName;
import org.apache.samza.container.grouper.task.GrouperMetadataImpl;
import org.apache.samza.coordinator.JobModelCalculator;
import org.apache.samza.coordinator.MetadataResourceUtil;
import org.apache.samza.job.model.ContainerModel;
import org.apache.samza.job.model.JobModel;
import org.apache.samza.job.model.TaskModel;
import org.apache.samza.metrics.MetricsRegistry;
import org.apache.samza.runtime.LocationId;
import org.apache.samza.serializers.model.SamzaObjectMapper;
import org.apache.samza.system.StreamMetadataCache;
import org.apache.samza.system.SystemAdmins;
import org.apache.samza.system.SystemStream;
import org.apache.samza.system.SystemStreamMetadata;
import org.apache.samza.system.SystemStreamPartition;
import org.apache.samza.util.SystemClock;

/**
 * Computes JobModels (leader) and reads published ones (everyone). Published models carry no
 * config: it is stripped before serialization, so no secret ever reaches storage, and each
 * processor runs with its own config.
 */
final class JobModels implements AutoCloseable {
  static final String TASK_GROUPER = "task.name.grouper.factory";
  static final String GROUP_BY_CONTAINER_IDS =
      "org.apache.samza.container.grouper.task.GroupByContainerIdsFactory";
  static final String HOST_AFFINITY = "job.host-affinity.enabled";
  private static final int METADATA_CACHE_TTL_MS = 5000;

  private final Config config;
  private final MetricsRegistry registry;
  private final ObjectMapper mapper = SamzaObjectMapper.getObjectMapper();
  private SystemAdmins systemAdmins;
  private StreamMetadataCache metadataCache;

  JobModels(Config config, MetricsRegistry registry) {
    this.config = withDefaults(config);
    this.registry = registry;
  }

  /**
   * Standalone assigns tasks to the live processor ids, which only GroupByContainerIds does;
   * Samza's default (GroupByContainerCount) would invent ids "0".."n-1". And Samza's calculator
   * passes task locality to the grouper only with host affinity on: here a task's "host" is its
   * previous processor, so on (the default) a membership change moves as few tasks as it can.
   */
  static Config withDefaults(Config config) {
    Map<String, String> copy = new HashMap<>(config);
    copy.putIfAbsent(TASK_GROUPER, GROUP_BY_CONTAINER_IDS);
    copy.putIfAbsent(HOST_AFFINITY, "true");
    return new MapConfig(copy);
  }

  private StreamMetadataCache metadataCache() {
    if (metadataCache == null) {
      systemAdmins = new SystemAdmins(config, getClass().getSimpleName());
      systemAdmins.start();
      metadataCache =
          new StreamMetadataCache(systemAdmins, METADATA_CACHE_TTL_MS, SystemClock.instance());
    }
    return metadataCache;
  }

  /**
   * The input streams whose partition count now differs from the number of their partitions that
   * {@code model} assigns. Judged against the model itself rather than a count taken when watching
   * began, so a change between that moment and the model's computation is not missed.
   */
  Set<SystemStream> partitionCountChanges(JobModel model) {
    Map<SystemStream, Set<Integer>> assigned = new HashMap<>();
    for (ContainerModel container : model.getContainers().values()) {
      for (TaskModel task : container.getTasks().values()) {
        for (SystemStreamPartition ssp : task.getSystemStreamPartitions()) {
          assigned
              .computeIfAbsent(ssp.getSystemStream(), k -> new HashSet<>())
              .add(ssp.getPartition().getPartitionId());
        }
      }
    }
    Set<SystemStream> inputs = new TaskConfig(config).getAllInputStreams();
    Set<SystemStream> changed = new HashSet<>();
    for (SystemStream stream : inputs) {
      SystemStreamMetadata m = metadataCache().getSystemStreamMetadata(stream, true);
      int current = m == null ? 0 : m.getSystemStreamPartitionMetadata().size();
      if (current != assigned.getOrDefault(stream, Collections.emptySet()).size()) {
        changed.add(stream);
      }
    }
    return changed;
  }

  /** The model for {@code processors}, given the previous one (null if none), as JSON. */
  String compute(List<String> processors, JobModel previous) {
    StreamMetadataCache metadataCache = metadataCache();
    // The processor list reaches the groupers only through the locality map's keys.
    Map<String, LocationId> processorLocality = new HashMap<>();
    for (String p : processors) {
      processorLocality.put(p, new LocationId(p));
    }
    Map<TaskName, Integer> changelogPartitions = new HashMap<>();
    Map<TaskName, String> previousOwner = new HashMap<>();
    Map<TaskName, List<SystemStreamPartition>> previousSsps = new HashMap<>();
    if (previous != null) {
      for (ContainerModel container : previous.getContainers().values()) {
        for (TaskModel task : container.getTasks().values()) {
          changelogPartitions.put(
              task.getTaskName(), task.getChangelogPartition().getPartitionId());
          previousOwner.put(task.getTaskName(), container.getId());
          previousSsps.put(task.getTaskName(), new ArrayList<>(task.getSystemStreamPartitions()));
        }
      }
    }
    // Each processor is its own "location", and a task's location is its previous owner: the
    // groupers that honour locality (GroupByContainerIds does) then leave tasks where they were
    // as far as the balance allows, so a membership change moves as few partitions as it can.
    Map<TaskName, LocationId> taskLocality = new HashMap<>();
    previousOwner.forEach((task, owner) -> taskLocality.put(task, new LocationId(owner)));
    GrouperMetadataImpl grouperMetadata =
        new GrouperMetadataImpl(processorLocality, taskLocality, previousSsps, previousOwner);
    JobModel model =
        JobModelCalculator.INSTANCE.calculateJobModel(
            config, changelogPartitions, metadataCache, grouperMetadata);
    // Checkpoint and changelog resources, idempotently, before anyone runs the model.
    new MetadataResourceUtil(model, registry, config).createResources();
    return write(new JobModel(new MapConfig(), model.getContainers()));
  }

  String write(JobModel model) {
    try {
      return mapper.writeValueAsString(model);
    } catch (IOException e) {
      throw new SamzaException("could not serialize the job model", e);
    }
  }

  /** Null for an empty string (no model yet). */
  JobModel read(String json) {
    if (json == null || json.isEmpty()) {
      return null;
    }
    try {
      return mapper.readValue(json, JobModel.class);
    } catch (IOException e) {
      throw new SamzaException("could not parse the published job model", e);
    }
  }

  @Override
  public void close() {
    if (systemAdmins != null) {
      systemAdmins.stop();
      systemAdmins = null;
      metadataCache = null;
    }
  }
}
